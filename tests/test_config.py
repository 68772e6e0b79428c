import pytest

from kit.config import PROFILES, GenerationConfig, WorldConfig, stage_config
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
