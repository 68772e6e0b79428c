import dataclasses

import pytest

from kit.config import (PROFILES, RANGES, ABConfig, CurationConfig, EvalConfig, GenerationConfig, PolicyConfig, Range,
                        RewardModelConfig, WorldConfig, stage_config)
from kit.errors import ParameterError


def test_profiles_change_sizes_only():
    keys = {frozenset(v) for v in PROFILES.values()}
    assert len(keys) == 1, "every profile sets the same knobs"
    tiny, cpu = stage_config(WorldConfig, "tiny"), stage_config(WorldConfig, "cpu")
    assert tiny.n_sessions < cpu.n_sessions
    assert type(tiny) is type(cpu)


def test_overrides_and_none_keeps_profile():
    cfg = stage_config(GenerationConfig, "tiny", max_new_tokens=7, temperature=None)
    assert cfg.max_new_tokens == 7 and cfg.temperature == GenerationConfig.temperature


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="profile"):
        stage_config(WorldConfig, "huge")
    with pytest.raises(ParameterError, match="n_userz"):
        stage_config(WorldConfig, "tiny", n_userz=3)
    with pytest.raises(ParameterError, match="n_users"):
        stage_config(WorldConfig, "tiny", n_users=0)


CONFIGS = [GenerationConfig, WorldConfig, CurationConfig, RewardModelConfig, PolicyConfig, EvalConfig, ABConfig]


def _numeric_fields(cls):
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        if int in kinds or float in kinds:
            yield f.name, int in kinds


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_numeric_field_refuses_nan_strings_booleans_and_out_of_range(cls):
    for profile in PROFILES:
        stage_config(cls, profile)   # every profile's sizes are valid
    for name, integer in _numeric_fields(cls):
        bounds = RANGES.get(name, Range())
        bad = [float("nan"), float("inf"), "3", True]
        if integer:
            bad.append(2.5)
        if bounds.low is not None:
            bad.append(bounds.low - 1 if not bounds.low_open else bounds.low)
        if bounds.high is not None:
            bad.append(bounds.high + 1 if not bounds.high_open else bounds.high)
        for value in bad:
            with pytest.raises(ParameterError, match=rf"parameter '{name}': expected"):
                stage_config(cls, "tiny", **{name: value})


@pytest.mark.parametrize("override, message", [
    (dict(rl_algorithm="ppo"), "rl_algorithm"),
    (dict(rl_loss_type="grpo2"), "rl_loss_type"), (dict(rs_rater_fix="false"), "rs_rater_fix"),
])
def test_policy_config_lists_choices_and_flags(override, message):
    with pytest.raises(ParameterError, match=f"parameter '{message}'"):
        stage_config(PolicyConfig, "tiny", **override)


@pytest.mark.parametrize("targets, message", [
    ({"source": {"user": 0.7, "internal": 0.2}}, "add up to 1"),
    ({"source": {"usr": 1.0}}, "values among user, internal"),
    ({"source": {"user": 1.5, "internal": -0.5}}, r"constraint_targets.source.user': expected a share"),
    ({"mood": {"happy": 1.0}}, "dimensions among"), ("source", "a mapping"),
])
def test_stratification_targets_are_checked(targets, message):
    with pytest.raises(ParameterError, match=message):
        stage_config(CurationConfig, "tiny", constraint_targets=targets)
    assert stage_config(CurationConfig, "tiny", constraint_targets={"source": {"user": 0.7, "internal": 0.3}})


def test_cross_field_rules():
    with pytest.raises(ParameterError, match="min_win_rate"):
        stage_config(EvalConfig, "tiny", min_win_rate=0.8, max_win_rate=0.6)
    with pytest.raises(ParameterError, match=r"signal_weights.continue"):
        stage_config(RewardModelConfig, "tiny", signal_weights={"continue": "0.3"})


def test_scaled_multiplies_fields_rounds_integers_and_checks_again():
    from kit.config import scaled

    cfg = stage_config(PolicyConfig, "cpu")
    out = scaled(cfg, rl_steps=3.0, rl_lr=5.0)
    assert out.rl_steps == cfg.rl_steps * 3 and type(out.rl_steps) is int
    assert out.rl_lr == pytest.approx(cfg.rl_lr * 5)
    assert scaled(cfg, rl_steps=0.5).rl_steps == int(round(cfg.rl_steps * 0.5))
    assert scaled(cfg) == cfg and cfg.rl_steps == stage_config(PolicyConfig, "cpu").rl_steps, "a copy"
    with pytest.raises(ParameterError, match="not_a_field"):
        scaled(cfg, not_a_field=2.0)
    with pytest.raises(ParameterError, match="rl_steps scale"):
        scaled(cfg, rl_steps=-1.0)
    with pytest.raises(ParameterError, match="rl_lr"):   # checked again: a learning rate of 0 is no rate
        scaled(cfg, rl_lr=0.0)
