"""Profiles and stage configurations: the one place that says how big each stage runs.

A profile (`tiny` for tests and CI, `cpu` for a real demo on two cores, `gpu` for one GPU) sets sizes only;
every profile runs the same code. Each stage has one config dataclass, filled from the profile and then from
the notebook's parameters (`stage_config(WorldConfig, "tiny", n_users=50)`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import ParameterError

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"

# Sizes per profile. Keys are field names of the stage configs below; a key applies to every config that has it.
PROFILES: dict[str, dict] = {
    # Seconds per stage: CI and the notebook tests.
    "tiny": dict(
        n_users=40, n_sessions=6, n_internal_sessions=2, max_turns=2, max_new_tokens=24, gen_batch_size=8,
        n_raters=3, max_annotated_prompts=8, eval_fraction=0.4,
        rm_max_pairs=8, rm_max_signal_examples=8, rm_epochs=1.0, rm_lora_layers=2, rm_max_length=384,
    ),
    # A real demo on two CPU cores. Generation is compute-bound there (~50-130 new tokens/s for the 135M model
    # in float32, prompts included), so traffic stays at a few hundred replies.
    "cpu": dict(
        n_users=600, n_sessions=80, n_internal_sessions=24, max_turns=3, max_new_tokens=64, gen_batch_size=32,
        n_raters=5, max_annotated_prompts=220, eval_fraction=0.2,
        rm_max_pairs=160, rm_max_signal_examples=160, rm_epochs=2.0, rm_lora_layers=8, rm_max_length=384,
    ),
    "gpu": dict(
        n_users=5000, n_sessions=1200, n_internal_sessions=300, max_turns=6, max_new_tokens=96, gen_batch_size=128,
        n_raters=5, max_annotated_prompts=4000, eval_fraction=0.15,
        rm_max_pairs=4000, rm_max_signal_examples=8000, rm_epochs=2.0, rm_lora_layers=0, rm_max_length=768,
    ),
}


def resolve_profile(profile: str) -> str:
    """'auto' means gpu on a CUDA machine and cpu otherwise."""
    if profile == "auto":
        from .models import cuda_available

        return "gpu" if cuda_available() else "cpu"
    if profile not in PROFILES:
        raise ParameterError("profile", f"one of {', '.join(PROFILES)} or auto", profile)
    return profile


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
class GenerationConfig:
    """Sampling for every place the policy writes a reply (traffic, rejection sampling, evaluation, A/B)."""
    profile: str = "cpu"
    max_new_tokens: int = 80
    temperature: float = 0.8
    top_p: float = 0.95
    gen_batch_size: int = 32


@dataclass
class WorldConfig:
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

    def __post_init__(self):
        for name in ("n_users", "n_sessions", "max_turns", "max_new_tokens", "gen_batch_size", "n_raters"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(name, "an integer >= 1", getattr(self, name))
        if self.n_internal_sessions < 0:
            raise ParameterError("n_internal_sessions", "an integer >= 0", self.n_internal_sessions)


@dataclass
class CurationConfig:
    """Curation (privacy, diversity, constraints, held-out split) and annotation."""
    profile: str = "cpu"
    eval_fraction: float = 0.2          # share of conversation openings held out for evaluation
    prune_threshold: float = 0.95       # cosine at or above which a prompt is a near-duplicate of a kept one
    keep_fraction: float = 0.85         # share of prompts the diversity stage keeps at most
    constraint_keep: float = 0.9        # share of the diverse prompts the stratified sample draws
    constraint_targets: dict | None = None  # {dimension: {value: share}}; None: match the original traffic
    max_annotated_prompts: int = 220    # training prompts sent to annotation (each costs one generation)
    pool_temperature: float = 1.0
    rewrite_share: float = 0.5          # share of second candidates that are prompted expert rewrites
    steer_share: float = 0.3            # share of user prompts that also go through the steerability workflow
    max_len_diff: int | None = 40       # pair filter: words
    max_emoji_diff: int | None = 2      # pair filter: emoji
    n_raters: int = 5
    consensus_agreement: float = 0.8

    def __post_init__(self):
        if not 0 < self.eval_fraction < 1:
            raise ParameterError("eval_fraction", "a number strictly between 0 and 1", self.eval_fraction)
        for name in ("keep_fraction", "constraint_keep", "consensus_agreement", "rewrite_share", "steer_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(name, "a number between 0 and 1", getattr(self, name))
        if self.n_raters < 1:
            raise ParameterError("n_raters", "an integer >= 1", self.n_raters)


@dataclass
class RewardModelConfig:
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
    score_batch_size: int = 16
    signal_weights: dict | None = None   # composite reward: {"continue": w, "thumb_up": w}; None = preference only
    style_flag_threshold: float = 0.3    # |standardised difference| or |correlation| that flags a style feature

    def __post_init__(self):
        for name in ("rm_max_pairs", "rm_max_signal_examples", "rm_batch_size", "rm_lora_r", "rm_max_length"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(name, "an integer >= 1", getattr(self, name))
        if self.rm_epochs <= 0 or self.rm_lr <= 0:
            raise ParameterError("rm_epochs/rm_lr", "positive numbers", (self.rm_epochs, self.rm_lr))
        for k in (self.signal_weights or {}):
            if k not in ("continue", "thumb_up"):
                raise ParameterError("signal_weights", "keys among continue, thumb_up", k)


def as_dict(config) -> dict:
    return dataclasses.asdict(config)


__all__ = ["PROFILES", "DEFAULT_MODEL", "DEFAULT_EMBEDDER", "resolve_profile", "stage_config",
           "GenerationConfig", "WorldConfig", "CurationConfig", "RewardModelConfig", "as_dict", "field"]
