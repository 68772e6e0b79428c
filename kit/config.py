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
        rs_max_prompts=6, rs_temperatures=(0.7, 1.0), sft_epochs=1.0, sft_lr=2e-4, sft_batch_size=4, sft_lora_layers=4,
        dpo_max_pairs=6, rl_steps=2, rl_prompts_per_step=1, rl_num_generations=2, policy_eval_prompts=6,
        eval_prompts=6, ab_users=400, ab_prompts_per_card=1, ab_samples_per_prompt=1, ab_days=3, ab_reply_sims=3,
    ),
    # A real demo on two CPU cores, sized for 3 generations in under an hour. Generation is the bottleneck
    # there (~1 reply/s for the 135M model in float32: 0.36 s per decoding step of a 32-reply batch, prefill ~500
    # tokens/s), so each generation generates a few hundred replies in all, and training updates LoRA on the top
    # layers only (the backward pass stops there). With ~40 SFT examples a generation, 2 epochs at 2e-4 (10 steps)
    # left held-out instruction following where the base model has it; 4 epochs at 1e-3 (20 steps) move it.
    "cpu": dict(
        n_users=600, n_sessions=28, n_internal_sessions=12, max_turns=2, max_new_tokens=64, gen_batch_size=32,
        n_raters=5, max_annotated_prompts=64, eval_fraction=0.35,
        rm_max_pairs=96, rm_max_signal_examples=32, rm_epochs=1.0, rm_lora_layers=4, rm_max_length=320,
        rs_max_prompts=24, rs_temperatures=(0.8,), sft_epochs=4.0, sft_lr=1e-3, sft_batch_size=8, sft_lora_layers=10,
        dpo_max_pairs=12, rl_steps=8, rl_prompts_per_step=2, rl_num_generations=4, policy_eval_prompts=24,
        eval_prompts=24, ab_users=20000, ab_prompts_per_card=3, ab_samples_per_prompt=1, ab_days=7,
        ab_reply_sims=30,
    ),
    # One 16 GB T4-class GPU, sized for 3 generations in about an hour: ~16 min a generation by bench/gpu_budget.py
    # (the cpu profile's measured costs, a T4's published throughput; README, Profiles). Unmeasured until
    # scripts/gpu_check.sh has run on a GPU.
    "gpu": dict(
        n_users=5000, n_sessions=400, n_internal_sessions=100, max_turns=4, max_new_tokens=96, gen_batch_size=128,
        n_raters=5, max_annotated_prompts=800, eval_fraction=0.2,
        rm_max_pairs=800, rm_max_signal_examples=1000, rm_epochs=1.0, rm_lora_layers=0, rm_max_length=768,
        rs_max_prompts=400, rs_temperatures=(0.7, 1.0), sft_epochs=2.0, sft_lr=2e-4, sft_batch_size=16,
        sft_lora_layers=0,
        dpo_max_pairs=256, rl_steps=40, rl_prompts_per_step=4, rl_num_generations=8, policy_eval_prompts=200,
        eval_prompts=200, ab_users=50000, ab_prompts_per_card=20, ab_samples_per_prompt=2, ab_days=7,
        ab_reply_sims=30,
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


def _at_least_one(config, names: tuple[str, ...]) -> None:
    """Raise ParameterError for the first of `names` that is not an integer >= 1."""
    for name in names:
        if int(getattr(config, name)) < 1:
            raise ParameterError(name, "an integer >= 1", getattr(config, name))


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
        _at_least_one(self, ("n_users", "n_sessions", "max_turns", "max_new_tokens", "gen_batch_size", "n_raters"))
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
    rm_accumulate_labels: bool = True    # train and evaluate on every generation's annotation so far

    def __post_init__(self):
        _at_least_one(self, ("rm_max_pairs", "rm_max_signal_examples", "rm_batch_size", "rm_lora_r", "rm_max_length"))
        if self.rm_epochs <= 0 or self.rm_lr <= 0:
            raise ParameterError("rm_epochs/rm_lr", "positive numbers", (self.rm_epochs, self.rm_lr))
        for k in (self.signal_weights or {}):
            if k not in ("continue", "thumb_up"):
                raise ParameterError("signal_weights", "keys among continue, thumb_up", k)


@dataclass
class PolicyConfig:
    """Policy optimisation: rejection sampling and SFT (notebook 04), the DPO patch and online RL (notebook 05)."""
    profile: str = "cpu"
    max_new_tokens: int = 80
    gen_batch_size: int = 32
    # rejection sampling: candidates per prompt = logged reply + current policy at each temperature
    # (+ the base model when it is not the current policy) (+ a prompted expert rewrite)
    rs_max_prompts: int = 64
    rs_temperatures: tuple = (0.7, 1.0)
    rs_include_base: bool = True
    rs_include_rewrite: bool = True
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
    # DPO patch, reference = the SFT policy (a frozen copy of its adapter, not a second model)
    dpo_max_pairs: int = 48
    dpo_beta: float = 0.1
    dpo_lr: float = 5e-5
    dpo_epochs: float = 1.0
    # online RL, reference = the policy RL starts from (a frozen copy of its adapter)
    rl_algorithm: str = "grpo"          # grpo | online_dpo | none
    rl_steps: int = 16
    rl_prompts_per_step: int = 2
    rl_num_generations: int = 4
    rl_lr: float = 1e-4                 # a LoRA rate (full-weight RL uses ~1e-6); at 2e-5 four cpu steps left the
                                        # KL to the start policy below 1e-5 and its samples unchanged
    rl_beta: float = 0.04               # KL coefficient, always set explicitly (Unsloth's GRPO default is 0.0)
    rl_loss_type: str = "grpo"          # TRL GRPO loss type, always set explicitly (Unsloth's default is dapo)
    rl_temperature: float = 1.0
    rl_near_policy: bool = True         # RL prompts where the reward is low or varies most between samples
    policy_eval_prompts: int = 48       # held-out prompts for the before/after checks of 04 and 05 (equal to 06's
                                        # eval_prompts, the three share one set and each policy's replies)

    def __post_init__(self):
        self.rs_temperatures = tuple(float(t) for t in self.rs_temperatures)
        _at_least_one(self, ("rs_max_prompts", "sft_batch_size", "sft_max_length", "sft_lora_r", "dpo_max_pairs",
                             "rl_prompts_per_step", "policy_eval_prompts", "max_new_tokens", "gen_batch_size"))
        if self.rl_num_generations < 2:
            raise ParameterError("rl_num_generations", "an integer >= 2 (RL compares samples of one prompt)",
                                 self.rl_num_generations)
        if self.rl_steps < 0:
            raise ParameterError("rl_steps", "an integer >= 0", self.rl_steps)
        if self.rl_algorithm not in ("grpo", "online_dpo", "none"):
            raise ParameterError("rl_algorithm", "grpo, online_dpo or none", self.rl_algorithm)
        if self.rl_beta < 0 or self.dpo_beta <= 0:
            raise ParameterError("rl_beta/dpo_beta", "rl_beta >= 0 and dpo_beta > 0", (self.rl_beta, self.dpo_beta))
        if not self.rs_temperatures:
            raise ParameterError("rs_temperatures", "at least one sampling temperature", self.rs_temperatures)


@dataclass
class EvalConfig:
    """Offline evaluation (notebook 06) and its deployment gate."""
    profile: str = "cpu"
    eval_prompts: int = 64              # held-out prompts, user and internal, replied to by both policies
    max_win_rate: float = 0.65          # the overfit guard: a proxy win rate above this blocks promotion
    min_win_rate: float = 0.5
    max_divergence: float = 0.15        # |user - internal| win rate above this blocks promotion
    following_tolerance: float = 0.02   # allowed fall in instruction following
    violation_tolerance: float = 0.03   # allowed rise in the violation rate

    def __post_init__(self):
        _at_least_one(self, ("eval_prompts",))
        for name in ("max_win_rate", "min_win_rate", "max_divergence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ParameterError(name, "a number between 0 and 1", getattr(self, name))


@dataclass
class ABConfig:
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

    def __post_init__(self):
        if not 0 < self.ab_share <= 0.5:
            raise ParameterError("ab_share", "a number in (0, 0.5]", self.ab_share)
        _at_least_one(self, ("ab_users", "ab_days", "ab_prompts_per_card", "ab_samples_per_prompt", "ab_max_turns"))


def as_dict(config) -> dict:
    return dataclasses.asdict(config)


__all__ = ["PROFILES", "DEFAULT_MODEL", "DEFAULT_EMBEDDER", "resolve_profile", "stage_config",
           "GenerationConfig", "WorldConfig", "CurationConfig", "RewardModelConfig", "PolicyConfig", "EvalConfig",
           "ABConfig", "as_dict", "field"]
