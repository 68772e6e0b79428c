"""Profiles and stage configurations: the one place that says how big each stage runs.

A profile (`tiny` for tests and CI, `cpu` for a real demo on two cores, `gpu` for one GPU) sets sizes only;
every profile runs the same code. Each stage has one config dataclass, filled from the profile and then from
the notebook's parameters (`stage_config(WorldConfig, "tiny", n_users=50)`).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import ParameterError

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"

# Sizes per profile. Keys are field names of the stage configs below; a key applies to every config that has it.
PROFILES: dict[str, dict] = {
    # Seconds per stage: CI and the notebook tests.
    "tiny": dict(
        n_users=40, n_sessions=6, n_internal_sessions=2, max_turns=2, max_new_tokens=24, gen_batch_size=8,
        n_raters=3, max_annotated_prompts=8, max_annotated_eval_prompts=4, candidates_per_prompt=2,
        eval_candidates_per_prompt=1, eval_fraction=0.4,
        rm_max_pairs=16, rm_max_signal_examples=8, rm_epochs=1.0, rm_lora_layers=2, rm_max_length=384,
        rs_max_prompts=6, sft_epochs=1.0, sft_max_steps=0, sft_lr=2e-4, sft_batch_size=4, sft_lora_layers=4,
        dpo_max_pairs=6, dpo_lr=5e-5, rl_lr=1e-4, rl_steps=2, rl_prompts_per_step=1, rl_num_generations=2, rl_follow_weight=2.0,
        policy_eval_prompts=6,
        eval_prompts=6, ab_users=400, ab_prompts_per_card=1, ab_samples_per_prompt=1, ab_days=3, ab_reply_sims=3,
    ),
    # A real demo on two CPU cores, sized for 3 generations in 46-50 minutes (bench/results/stages.md). Generation is the bottleneck
    # there (~1 reply/s for the 135M model in float32: prefill of a ~170-token prompt ~0.35 s, a decoding step of a
    # 32-reply batch ~0.35 s), so every reply generated is used twice: annotation ranks every pair of a prompt's
    # candidates and rejection sampling chooses among the same candidates; the held-out and A/B replies of a
    # policy are generated once in a run. Reward models are embedding models (seconds to train and to score);
    # SFT trains LoRA on the top layers only (the backward pass stops there) on every generation's kept replies.
    # Its 40-step cap is 4 epochs of generation 2's accumulated set (at 24 the later generations stopped near +16
    # following points, at 40 +19 to +25); RL weighs the card's rules at 8 (docs/policy-training.md: from a fixed
    # start it held following level where 2 lost 3-5 points; across the runs' generations the two look alike).
    "cpu": dict(
        n_users=600, n_sessions=20, n_internal_sessions=8, max_turns=2, max_new_tokens=64, gen_batch_size=32,
        n_raters=5, max_annotated_prompts=32, max_annotated_eval_prompts=12, candidates_per_prompt=2,
        eval_candidates_per_prompt=4, eval_fraction=0.3,
        rm_max_pairs=2000, rm_max_signal_examples=400, rm_epochs=1.0, rm_lora_layers=4, rm_max_length=320,
        rs_max_prompts=32, sft_epochs=4.0, sft_max_steps=40, sft_lr=1e-3, sft_batch_size=8, sft_lora_layers=10,
        dpo_max_pairs=8, dpo_lr=2e-4, rl_steps=12, rl_prompts_per_step=2, rl_num_generations=4, rl_lr=2e-4,
        rl_follow_weight=8.0,
        policy_eval_prompts=32, eval_prompts=32, ab_users=20000, ab_prompts_per_card=3, ab_samples_per_prompt=1,
        ab_days=7, ab_reply_sims=30,
    ),
    # One 16 GB T4-class GPU, sized for 3 generations in about an hour: ~16 min a generation by bench/gpu_budget.py
    # (the cpu profile's measured costs, a T4's published throughput; README, Profiles). Unmeasured until
    # scripts/gpu_check.sh has run on a GPU.
    "gpu": dict(
        n_users=5000, n_sessions=400, n_internal_sessions=100, max_turns=4, max_new_tokens=96, gen_batch_size=128,
        n_raters=5, max_annotated_prompts=400, max_annotated_eval_prompts=100, candidates_per_prompt=3,
        eval_candidates_per_prompt=2, eval_fraction=0.2,
        rm_max_pairs=4000, rm_max_signal_examples=1000, rm_epochs=1.0, rm_lora_layers=0, rm_max_length=768,
        rs_max_prompts=400, sft_epochs=2.0, sft_max_steps=0, sft_lr=2e-4, sft_batch_size=16, sft_lora_layers=0,
        dpo_max_pairs=256, dpo_lr=5e-5, rl_steps=40, rl_prompts_per_step=4, rl_num_generations=8, rl_lr=1e-4,
        rl_follow_weight=2.0,   # the cpu profile's 8 is measured on two cores only
        policy_eval_prompts=200, eval_prompts=200, ab_users=50000, ab_prompts_per_card=20, ab_samples_per_prompt=2,
        ab_days=7, ab_reply_sims=30,
    ),
}


# The flywheel's lessons: per scenario, the notebook parameters it sets (kit.flywheel runs them; kit.report says
# what each showed).
SCENARIOS: dict[str, dict[str, dict]] = {
    "none": {},
    "overfit": {"02_curation": {"length_filter": False, "emoji_filter": False},
                "05_dpo_rl": {"rl_algorithm": "grpo", "rl_beta": 0.0, "rl_loss_type": "dapo", "rl_steps_scale": 3.0,
                              "rl_lr_scale": 5.0}},
    "emoji": {"02_curation": {"emoji_filter": False, "rater_emoji_bias": 1.2}},
    "single_rater": {"02_curation": {"n_raters": 1}},
    "off_policy": {"05_dpo_rl": {"rl_near_policy": False}},
}


def scenario_parameters(scenario: str, name: str) -> dict:
    if scenario not in SCENARIOS:
        raise ParameterError("scenario", f"one of {', '.join(SCENARIOS)}", scenario)
    return dict(SCENARIOS[scenario].get(name, {}))


def resolve_profile(profile: str) -> str:
    """'auto' means gpu on a CUDA machine and cpu otherwise."""
    if profile == "auto":
        from .device import cuda_available

        return "gpu" if cuda_available() else "cpu"
    if profile not in PROFILES:
        raise ParameterError("profile", f"one of {', '.join(PROFILES)} or auto", profile)
    return profile


class Range(NamedTuple):
    """Where a numeric field may lie; None is unbounded, an open end excludes its bound."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, x) -> bool:
        return (self.low is None or (x > self.low if self.low_open else x >= self.low)) and \
            (self.high is None or (x < self.high if self.high_open else x <= self.high))

    def describe(self, integer: bool) -> str:
        what = "an integer" if integer else "a number"
        fmt = lambda v: f"{v:g}"  # noqa: E731
        if self.high is None:
            return what if self.low is None else f"{what} {'>' if self.low_open else '>='} {fmt(self.low)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{what} in {left}{fmt(self.low)}, {fmt(self.high)}{right}"


# The range of every numeric field, by name: a name means the same thing in every config that has it. A field
# not listed here only needs to be a finite number of its type.
RANGES: dict[str, Range] = {
    **dict.fromkeys(("n_users", "n_sessions", "max_turns", "max_new_tokens", "gen_batch_size", "n_raters",
                     "max_annotated_prompts", "max_annotated_eval_prompts", "candidates_per_prompt",
                     "eval_candidates_per_prompt", "rm_max_pairs", "rm_max_signal_examples", "rm_batch_size", "rm_lora_r",
                     "rm_max_length", "score_batch_size", "rs_max_prompts", "sft_batch_size", "sft_max_length",
                     "sft_lora_r", "dpo_max_pairs", "rl_prompts_per_step", "policy_eval_prompts", "eval_prompts",
                     "ab_users", "ab_days", "ab_prompts_per_card", "ab_samples_per_prompt", "ab_max_turns",
                     "ab_bootstrap"), Range(1)),
    **dict.fromkeys(("n_internal_sessions", "day", "rm_lora_layers", "sft_lora_layers", "sft_max_steps", "sft_target_words", "rl_steps", "ab_reply_sims",
                     "max_len_diff", "max_emoji_diff", "rl_max_len_diff", "rl_max_emoji_diff", "rater_noise", "style_flag_threshold", "rs_follow_weight",
                     "rl_follow_weight", "rl_length_weight", "rl_length_tolerance",
                     "rl_unfinished_penalty", "rl_beta", "temperature",
                     "pool_temperature"), Range(0)),
    **dict.fromkeys(("rm_epochs", "rm_lr", "rm_head_c", "sft_epochs", "sft_lr", "dpo_beta", "dpo_lr", "dpo_epochs", "rl_lr",
                     "rl_temperature"), Range(0, low_open=True)),
    **dict.fromkeys(("constraint_keep", "rewrite_share", "steer_share", "consensus_agreement", "rs_min_following",
                     "max_win_rate", "min_win_rate", "max_divergence", "following_tolerance", "violation_tolerance",
                     "pii_rate"), Range(0, 1)),
    **dict.fromkeys(("top_p", "keep_fraction", "prune_threshold"), Range(0, 1, low_open=True)),
    "eval_fraction": Range(0, 1, low_open=True, high_open=True),
    "ab_share": Range(0, 0.5, low_open=True),
    "rl_num_generations": Range(2),   # RL compares samples of one prompt
}
CHOICES = {"rl_algorithm": ("grpo", "online_dpo", "none"),
           # TRL 1.14's GRPO loss types that need no other setting
           "rl_loss_type": ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo")}


def check_fields(config) -> None:
    """Every field of a stage config against its type annotation, RANGES and CHOICES: a string where a number is
    expected, NaN, a negative rate or a fraction above 1 is a ParameterError naming the field, before any stage
    runs. The one helper every config's __post_init__ calls."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        kinds = [k for k in (typing.get_args(hint) or (hint,)) if k is not type(None)]
        kind = kinds[0]
        rng = RANGES.get(f.name, Range())
        if value is None:
            if len(kinds) < len(typing.get_args(hint) or (hint,)):
                continue
            raise ParameterError(f.name, _expected(kind, rng), value)
        if kind is tuple:   # sampling temperatures: a non-empty list of numbers
            if not isinstance(value, (list, tuple)) or not value or not all(_number_ok(v, False, rng) for v in value):
                each = rng.describe(False).replace("a number", "numbers")
                raise ParameterError(f.name, f"a non-empty list of {each}", value)
            setattr(config, f.name, tuple(value))
        elif kind in (int, float):
            if not _number_ok(value, kind is int, rng):
                raise ParameterError(f.name, _expected(kind, rng), value)
        elif kind is bool and not isinstance(value, bool):
            raise ParameterError(f.name, "true or false", value)
        elif kind is str and (not isinstance(value, str) or not value.strip()):
            raise ParameterError(f.name, "a non-empty string", value)
        elif kind is dict and not isinstance(value, dict):
            raise ParameterError(f.name, "a mapping ({name: value})", value)
        if f.name in CHOICES and value not in CHOICES[f.name]:
            raise ParameterError(f.name, f"one of {', '.join(CHOICES[f.name])}", value)
    if getattr(config, "profile", None) not in PROFILES:
        raise ParameterError("profile", f"one of {', '.join(PROFILES)}", getattr(config, "profile", None))


def _number_ok(value, integer: bool, rng: Range) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        return False
    return math.isfinite(value) and rng.holds(value)


def _expected(kind, rng: Range) -> str:
    return rng.describe(kind is int) if kind in (int, float) else f"a value of type {kind.__name__}"


class _StageConfig:
    """What every stage config does on construction: check each field (check_fields), then its own rules."""

    def __post_init__(self):
        check_fields(self)
        self._check()

    def _check(self) -> None:
        pass


def stage_config(cls, profile: str, **overrides):
    """Build a stage config: its defaults, then the profile's sizes, then explicit overrides (None = keep)."""
    profile = resolve_profile(profile)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in PROFILES[profile].items() if k in names}
    for key, value in overrides.items():
        if key not in names:
            raise ParameterError(key, f"a field of {cls.__name__} ({', '.join(sorted(names))})", key)
        if value is not None:
            values[key] = value
    values["profile"] = profile
    return cls(**values)


@dataclass
class GenerationConfig(_StageConfig):
    """Sampling for every place the policy writes a reply (traffic, rejection sampling, evaluation, A/B)."""
    profile: str = "cpu"
    max_new_tokens: int = 80
    temperature: float = 0.8
    top_p: float = 0.95
    gen_batch_size: int = 32


@dataclass
class WorldConfig(_StageConfig):
    """The synthetic world's sizes and knobs (the behavioural parameters live in kit/world/params.py)."""
    profile: str = "cpu"
    n_users: int = 600
    n_sessions: int = 160            # sessions of the `user` source per traffic collection
    n_internal_sessions: int = 48    # sessions of internal testers
    max_turns: int = 4               # assistant replies per session at most (p(continue) decides earlier ends)
    max_new_tokens: int = 80
    gen_batch_size: int = 32
    n_raters: int = 5
    rater_emoji_bias: float | None = None   # None: the documented default in params.py
    rater_length_bias: float | None = None
    rater_noise: float | None = None
    pii_rate: float | None = None
    day: int = 0


@dataclass
class CurationConfig(_StageConfig):
    """Curation (privacy, diversity, constraints, held-out split) and annotation."""
    profile: str = "cpu"
    eval_fraction: float = 0.2          # share of conversation openings held out for evaluation
    prune_threshold: float = 0.95       # cosine at or above which a prompt is a near-duplicate of a kept one
    keep_fraction: float = 0.85         # share of prompts the diversity stage keeps at most
    constraint_keep: float = 0.9        # share of the diverse prompts the stratified sample draws
    constraint_targets: dict | None = None  # {dimension: {value: share}}; None: match the original traffic
    max_annotated_prompts: int = 220    # training prompts sent to annotation
    max_annotated_eval_prompts: int | None = None  # evaluation prompts annotated; None: half the above
    candidates_per_prompt: int = 3      # new candidates per training prompt (each one generation); the panel ranks
                                        # every pair among them and the logged reply
    eval_candidates_per_prompt: int = 1
    pool_temperature: float = 1.0
    rewrite_share: float = 0.5          # share of second candidates that are prompted expert rewrites
    steer_share: float = 0.3            # share of user prompts that also go through the steerability workflow
    max_len_diff: int | None = 40       # pair filter: words
    max_emoji_diff: int | None = 2      # pair filter: emoji
    n_raters: int = 5
    consensus_agreement: float = 0.8

    def _check(self):
        from .curation import check_targets

        check_targets(self.constraint_targets)


@dataclass
class RewardModelConfig(_StageConfig):
    """Reward models: pointwise and pairwise preference models, user-signal classifiers, the composite reward."""
    profile: str = "cpu"
    rm_max_pairs: int = 160              # preference pairs used for training at most (each pair = 2 sequences)
    rm_max_signal_examples: int = 160    # logged replies per user-signal model at most
    rm_epochs: float = 2.0
    rm_batch_size: int = 8
    rm_lr: float = 2e-4
    rm_lora_r: int = 16
    rm_lora_layers: int = 8              # LoRA on the top N transformer layers only (0 = all): on a CPU the
                                         # backward pass then stops early, which is most of the cost
    rm_max_length: int = 384
    rm_backbone: str = DEFAULT_EMBEDDER  # a sentence encoder (an embedding reward model: frozen encoder + linear
                                         # head), or a causal LM ("policy": the policy's own) with LoRA and TRL's
                                         # RewardTrainer; the rm_epochs/rm_lr/rm_lora_* knobs apply to the latter
    rm_head_c: float = 0.3               # embedding models: inverse L2 strength of the head (scikit-learn's C)
    score_batch_size: int = 16
    signal_weights: dict | None = None   # composite reward: {"continue": w, "thumb_up": w}; None = preference only
    style_flag_threshold: float = 0.3    # |standardised difference| or |correlation| that flags a style feature
    rm_accumulate_labels: bool = True    # train and evaluate on every generation's annotation so far

    def _check(self):
        for k, w in (self.signal_weights or {}).items():
            if k not in ("continue", "thumb_up"):
                raise ParameterError("signal_weights", "keys among continue, thumb_up", k)
            if not _number_ok(w, False, Range()):
                raise ParameterError(f"signal_weights.{k}", "a number", w)


@dataclass
class PolicyConfig(_StageConfig):
    """Policy optimisation: rejection sampling and SFT (notebook 04), the DPO patch and online RL (notebook 05)."""
    profile: str = "cpu"
    max_new_tokens: int = 80
    gen_batch_size: int = 32
    # rejection sampling: over the candidates annotation generated for its training prompts (notebook 02)
    rs_max_prompts: int = 64
    rs_follow_weight: float = 2.0       # selection score = z(composite reward) + weight * instruction following:
                                        # breaking one of four rules (-0.25) costs half a reward SD
    rs_min_following: float = 0.0       # a best candidate following fewer of its card's rules is not kept
    rs_rater_fix: bool = True           # kept replies that break a rule get the raters' rule edits (the paper's
                                        # steerability workflow); False trains on the model's own slips
    # SFT: from the base model every generation, a fresh LoRA adapter
    sft_epochs: float = 2.0
    sft_lr: float = 2e-4
    sft_batch_size: int = 8
    sft_max_length: int = 768
    sft_lora_r: int = 16
    sft_lora_layers: int = 0            # LoRA on the top N layers only (0 = all); DPO and RL train the same adapter
    sft_include_rewrites: bool = True   # the raters' compliant rewrites from annotation join the SFT set
    sft_export_merged: bool = False     # also save base + adapter merged (a full model folder)
    sft_accumulate: bool = True         # train on the rejection-sampled sets of every generation so far
    sft_max_steps: int = 0              # at most this many optimiser steps (0: sft_epochs decide), so an SFT set that
                                        # grows with the generations costs the same each generation
    sft_target_words: int = 0           # word budget of an SFT target (0: what the generation limit leaves room
                                        # for, kit.rejection.target_words)
    sft_open_ends: bool = True          # a target the generation limit cut short (and no closing rule ended) trains
                                        # no end-of-turn token: the policy learns its words, not to stop there
    # DPO patch, reference = the SFT policy (a frozen copy of its adapter, not a second model)
    dpo_max_pairs: int = 48
    dpo_beta: float = 0.1
    dpo_lr: float = 5e-5
    dpo_epochs: float = 1.0
    # online RL, reference = the policy RL starts from (a frozen copy of its adapter)
    rl_algorithm: str = "online_dpo"    # online_dpo | grpo | none; online DPO raised the held-out hidden utility
                                        # where GRPO did not, in the same CPU time (bench/results/rl_online_dpo_seed2)
    rl_steps: int = 16
    rl_prompts_per_step: int = 2
    rl_num_generations: int = 4
    rl_lr: float = 1e-4                 # a LoRA rate (full-weight RL uses ~1e-6); at 2e-5 four cpu steps left the
                                        # KL to the start policy below 1e-5 and its samples unchanged
    rl_beta: float = 0.04               # GRPO: KL coefficient, always set explicitly (Unsloth's default is 0.0);
                                        # online DPO: its beta (0.04 and 0.1 measured alike in that benchmark)
    rl_loss_type: str = "grpo"          # TRL GRPO loss type, always set explicitly (Unsloth's default is dapo)
    rl_temperature: float = 1.0
    rl_follow_weight: float = 2.0       # RL reward = composite reward / its SD + weight * share of rules followed
    rl_length_weight: float = 0.0       # length control: minus weight * |log(words / start's words)| beyond the
    rl_length_tolerance: float = 0.15   # tolerance (0.15: +/-15 % free); the start's words are the mean of its
                                        # first RL samples (kit.rl.length_controlled); 0 turns the control off
    rl_unfinished_penalty: float = 0.0  # reward minus this for a sample the token limit cut before it ended
    rl_mask_truncated: bool = False     # GRPO: such samples count in their group's baseline, not in the loss (DAPO);
                                        # online DPO: such a sample is never the chosen reply
    rl_max_len_diff: int | None = None  # online DPO: its pair's replies differ by at most this many words and
    rl_max_emoji_diff: int | None = None  # emoji (annotation's pair filter: max_len_diff, max_emoji_diff); None: any
    rl_near_policy: bool = True         # RL prompts where the reward is low or varies most between samples
    policy_eval_prompts: int = 48       # held-out prompts for the before/after checks of 04 and 05 (equal to 06's
                                        # eval_prompts, the three share one set and each policy's replies)


@dataclass
class EvalConfig(_StageConfig):
    """Offline evaluation (notebook 06) and its deployment gate."""
    profile: str = "cpu"
    eval_prompts: int = 64              # held-out prompts, user and internal, replied to by both policies
    max_win_rate: float = 0.65          # the overfit guard: a proxy win rate above this blocks promotion
    min_win_rate: float = 0.5
    max_divergence: float = 0.15        # |user - internal| win rate above this blocks promotion
    following_tolerance: float = 0.02   # allowed fall in instruction following
    violation_tolerance: float = 0.03   # allowed rise in the violation rate

    def _check(self):
        if self.min_win_rate > self.max_win_rate:
            raise ParameterError("min_win_rate", f"a number <= max_win_rate ({self.max_win_rate})", self.min_win_rate)


@dataclass
class ABConfig(_StageConfig):
    """The synthetic A/B test (notebook 07)."""
    profile: str = "cpu"
    ab_users: int = 20000               # population the test draws from (simulating users is cheap)
    ab_share: float = 0.1               # share of users in each arm
    ab_days: int = 7
    ab_prompts_per_card: int = 6        # cached prompts per character; replies come from the arms' real models
    ab_samples_per_prompt: int = 1
    ab_max_turns: int = 6
    ab_bootstrap: int = 2000
    ab_reply_sims: int = 30             # re-simulations on resampled reply caches for the intervals (0 = off;
                                        # kit/abtest.py reply_noise): the cache's own sampling noise


def scaled(config, **factors):
    """A copy of a stage config with fields multiplied (an integer field rounded to an integer), checked again like
    any config: `scaled(cfg, rl_steps=3.0, rl_lr=5.0)` is the `overfit` lesson's RL budget (notebook 05's
    rl_steps_scale and rl_lr_scale)."""
    values = {}
    for name, factor in factors.items():
        if name not in {f.name for f in dataclasses.fields(config)}:
            raise ParameterError(name, f"a field of {type(config).__name__} to scale", name)
        if not _number_ok(factor, False, Range(0)):
            raise ParameterError(f"{name} scale", "a number >= 0", factor)
        value = getattr(config, name)
        values[name] = int(round(value * factor)) if type(value) is int else value * factor
    return dataclasses.replace(config, **values)


def as_dict(config) -> dict:
    return dataclasses.asdict(config)


__all__ = ["PROFILES", "SCENARIOS", "scenario_parameters", "DEFAULT_MODEL", "DEFAULT_EMBEDDER", "RANGES", "CHOICES", "Range", "check_fields",
           "resolve_profile", "stage_config", "GenerationConfig", "WorldConfig", "CurationConfig",
           "RewardModelConfig", "PolicyConfig", "EvalConfig", "ABConfig", "scaled", "as_dict", "field"]
