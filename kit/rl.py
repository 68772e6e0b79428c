"""Online RL (step 4c of the method): single-turn, the history fixed, only the final reply optimised.

Two algorithms behind one parameter, `rl_algorithm`:

* `grpo`: TRL's GRPOTrainer, a group of samples per prompt, reward = the composite reward (the pointwise reward
  model, plus the user-signal auxiliaries given a weight). Its loss type and KL coefficient are always set
  explicitly: Unsloth switches TRL's defaults to `loss_type="dapo"` and `beta=0.0`, which removes the KL term,
  and the overfitting lesson needs the KL term as a knob.
* `online_dpo`: sample several replies per prompt from the current policy, rank them with the reward, take a DPO
  step on (best, worst), repeat. The reference stays the policy RL started from.

Either way the policy starts from the generation's latest adapter (SFT, or SFT + DPO patch); the frozen copy of
that adapter is the reference, so there is never a second model in memory.

The raters over-reward length, so the reward model learns to as well, and RL lengthens replies to please it.
`rl_length_weight` > 0 adds a length control (`length_controlled`): replies whose length strays from the start
policy's by more than `rl_length_tolerance` (on the log scale) lose reward, the start's length being the mean of
the first RL samples it draws (training prompts only; no held-out reply is read).

RL prompts are chosen near-policy: where the current policy's own samples (rejection sampling's candidate table)
score low or disagree most. `rl_near_policy=False` draws them at random instead, for the `off_policy` lesson.
"""
from __future__ import annotations

import tempfile
import time

import numpy as np

from .errors import KitError, ParameterError
from .sampling import unfinished
from .seeding import rng, sample_in_order
from .training import base_args, history, losses, save_adapter

GRPO_CURVES = ("reward", "reward_std", "kl", "completions/mean_length", "entropy", "loss")


def near_policy_prompts(items: list[dict], rs_table, n: int, seed: int, near_policy: bool = True) -> tuple[list, dict]:
    """Pick n RL prompts. Near-policy: rank prompts by how low the policy's samples score and by how much they
    vary; a prompt's priority is the better of its two ranks. Returns (items, report)."""
    if n >= len(items):
        return list(items), {"chosen_by": "all", "prompts": len(items)}
    if not near_policy or rs_table is None or not len(rs_table):
        return sample_in_order(items, n, seed, "rl-prompts"), {"chosen_by": "random", "prompts": n}
    # the current policy's own replies: its logged reply and its fresh samples (annotation's pool key "deployed")
    own = rs_table[rs_table["origin"].isin(["logged", "policy:deployed"])]
    stats = own.groupby("item")["reward"].agg(["mean", "std"]).fillna(0.0)
    priority = np.maximum(stats["mean"].rank(pct=True, ascending=False), stats["std"].rank(pct=True))
    order = priority.sort_values(ascending=False, kind="stable").index.tolist()[:n]
    if len(order) < n:   # prompts without policy samples fill in at random
        taken = set(order)
        rest = [i for i in range(len(items)) if i not in taken]
        extra = rng(seed, "rl-prompts-fill").choice(len(rest), size=n - len(order), replace=False)
        order += [rest[i] for i in extra]
    chosen = sorted(order)
    report = {"chosen_by": "near-policy (low or varied reward)", "prompts": n,
              "mean_reward_chosen": float(stats.loc[[i for i in chosen if i in stats.index], "mean"].mean()),
              "mean_reward_all": float(stats["mean"].mean()),
              "reward_sd_chosen": float(stats.loc[[i for i in chosen if i in stats.index], "std"].mean()),
              "reward_sd_all": float(stats["std"].mean())}
    return [items[i] for i in chosen], report


def prompts(rs_items: list[dict], rs_table, cfg, seed: int) -> tuple[list, dict]:
    """Notebook 05's RL prompts (also `python -m kit train rl`): rl_steps x rl_prompts_per_step of rejection
    sampling's, near-policy or at random (cfg.rl_near_policy). Returns (items, report)."""
    return near_policy_prompts(rs_items, rs_table, max(cfg.rl_steps * cfg.rl_prompts_per_step, 1), seed,
                               near_policy=cfg.rl_near_policy)


class length_controlled:
    """A reward minus `weight` x how far a reply's length strays from the start policy's beyond `tolerance`:
    weight * max(0, |log((words + 1) / (reference + 1))| - log(1 + tolerance)). The reference is the mean words of
    the first replies scored, which in training are the start policy's first RL samples; `reference_words` holds it
    (None before the first call)."""

    def __init__(self, reward_fn, weight: float, tolerance: float):
        self.reward_fn, self.weight, self.tolerance = reward_fn, float(weight), float(tolerance)
        self.reference_words: float | None = None

    def penalty(self, replies: list[str]) -> np.ndarray:
        from .features import words

        n = np.array([len(words(r)) for r in replies], dtype=float)
        if self.reference_words is None:
            self.reference_words = float(n.mean()) if len(n) else 0.0
        gap = np.abs(np.log((n + 1.0) / (self.reference_words + 1.0))) - np.log1p(self.tolerance)
        return self.weight * np.maximum(gap, 0.0)

    def __call__(self, items, replies):
        return np.asarray(self.reward_fn(items, replies), dtype=float) - self.penalty(replies)


def rl_reward(run, generation: int, cards: dict, rs_table, cfg, signal_weights: dict | None = None):
    """What RL optimises (notebook 05, `python -m kit train rl`): generation `generation`'s composite reward
    (kit.rewards.load_composite_reward, with `signal_weights`) in units of its spread over rejection sampling's
    candidates, plus rl_follow_weight times the share of the card's rules followed (kit.rejection); with
    rl_length_weight > 0, under the length control (`length_controlled`)."""
    from .rejection import verifiable_reward_fn
    from .rewards import load_composite_reward

    fn = verifiable_reward_fn(cards, load_composite_reward(run, generation, cards, signal_weights),
                              follow_weight=cfg.rl_follow_weight, reward_sd=float(rs_table["reward"].std()))
    if cfg.rl_length_weight > 0:
        fn = length_controlled(fn, cfg.rl_length_weight, cfg.rl_length_tolerance)
    return fn


def _length_reference(reward_fn) -> dict:
    """The length control's settings and reference, for the training log ({} without one)."""
    if not isinstance(reward_fn, length_controlled):
        return {}
    return {"length_control": {"weight": reward_fn.weight, "tolerance": reward_fn.tolerance,
                               "reference_words": reward_fn.reference_words}}


def _rows(items: list[dict], cards: dict) -> list[dict]:
    return [{"prompt": cards[it["character_id"]].prompt(it["history"], it.get("user_name")),
             "character_id": it["character_id"], "user_name": it.get("user_name") or "",
             "history": [{"role": m["role"], "content": m["content"]} for m in it["history"] if m["role"] != "system"]}
            for it in items]


def reward_function(reward_fn, *, unfinished_penalty: float = 0.0, end_ids=(), max_tokens: int | None = None):
    """The composite reward as a TRL reward function (called with the dataset's columns as keyword lists).

    `unfinished_penalty` > 0: a completion that reached `max_tokens` without ending (its last token id not in
    `end_ids`) loses that much reward, DAPO's overlong shaping in its simplest form: a reply cut off by the limit is
    not one a user would read to its end, and without it a reward that likes length teaches the policy not to stop."""
    ends = {int(i) for i in end_ids}

    def rm_reward(prompts, completions, character_id, user_name, history, completion_ids=None, **_):
        items = [{"character_id": c, "user_name": u or None, "history": h}
                 for c, u, h in zip(character_id, user_name, history)]
        replies = [c[0]["content"] if isinstance(c, list) else str(c) for c in completions]
        rewards = [float(x) for x in reward_fn(items, replies)]
        if unfinished_penalty > 0 and completion_ids is not None:
            rewards = [r - unfinished_penalty * unfinished(ids, ends, max_tokens)
                       for r, ids in zip(rewards, completion_ids)]
        return rewards

    return rm_reward


def end_token_ids(model, tok) -> set:
    """The ids that end a completion: the generation config's end-of-sequence ids, the tokenizer's, and padding."""
    ids = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tok.eos_token_id,
                  tok.pad_token_id):
        if value is not None:
            ids.update(value if isinstance(value, (list, tuple)) else [value])
    return {int(i) for i in ids}


def train(model_name: str, start_adapter, items: list[dict], cards: dict, reward_fn, out_dir, cfg, seed: int) -> dict:
    if cfg.rl_algorithm == "grpo":
        return train_grpo(model_name, start_adapter, items, cards, reward_fn, out_dir, cfg, seed)
    if cfg.rl_algorithm == "online_dpo":
        return train_online_dpo(model_name, start_adapter, items, cards, reward_fn, out_dir, cfg, seed)
    raise ParameterError("rl_algorithm", "grpo or online_dpo (none skips RL)", cfg.rl_algorithm)


def max_seq_length(tokenizer, rows: list[dict], completion_tokens: int, floor: int) -> int:
    """The longest rendered prompt plus a whole completion (at least `floor`). TRL's GRPO does not truncate
    prompts, and Unsloth's fast forward cuts every sequence at the model's max_seq_length, so a shorter limit would
    cut late-turn samples and misalign their log-probs and KL with the completions."""
    longest = max(len(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True,
                                                    return_dict=True)["input_ids"]) for r in rows)
    return max(floor, longest + completion_tokens)


def _start(model_name, start_adapter, rows, cfg, seed):
    from .models import load_policy, load_tokenizer

    if start_adapter is None:
        raise KitError("RL starts from the generation's SFT (or DPO) adapter; run notebook 04 first")
    length = max_seq_length(load_tokenizer(model_name), rows, cfg.max_new_tokens, cfg.sft_max_length)
    return load_policy(model_name, start_adapter, trainable=True, max_seq_length=length, seed=seed)


def train_grpo(model_name: str, start_adapter, items: list[dict], cards: dict, reward_fn, out_dir, cfg,
               seed: int) -> dict:
    from .models import choose_backend

    choose_backend(quiet=True)  # before TRL is bound: on its backend this imports Unsloth, which patches TRL
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rows = _rows(items, cards)
    model, tok = _start(model_name, start_adapter, rows, cfg, seed)
    k = cfg.rl_num_generations
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(loss_type=cfg.rl_loss_type, beta=cfg.rl_beta, num_generations=k,
                          max_completion_length=cfg.max_new_tokens, temperature=cfg.rl_temperature, top_p=1.0,
                          scale_rewards="group", mask_truncated_completions=cfg.rl_mask_truncated,
                          **base_args(tmp, seed, batch_size=cfg.rl_prompts_per_step * k, lr=cfg.rl_lr,
                                      max_steps=cfg.rl_steps))
        reward = reward_function(reward_fn, unfinished_penalty=cfg.rl_unfinished_penalty,
                                 end_ids=end_token_ids(model, tok), max_tokens=cfg.max_new_tokens)
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tok)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    backend = choose_backend(quiet=True)
    # what the trainer ran with, read back from it: a patched trainer may replace what the config asked for
    loss_type, beta = trainer.args.loss_type, trainer.args.beta
    reference = "adapter 'ref' (frozen copy of the start adapter)" if "ref" in trainer.model.peft_config else \
        ("none (beta = 0: no KL term)" if beta == 0 else "base model (adapters disabled)")
    save_adapter(trainer.model, out_dir, {"stage": "rl", "algorithm": "grpo", "base_model": model_name,
                                          "start_adapter": str(start_adapter), "loss_type": loss_type,
                                          "beta": beta, "reference": reference, "backend": backend.name,
                                          "seed": seed})
    curves = history(trainer, GRPO_CURVES)
    curves["length"] = curves.pop("completions/mean_length", [])
    return {"algorithm": "grpo", "steps": cfg.rl_steps, "loss_type": loss_type, "beta": beta,
            "reference": reference, "curves": curves, "seconds": seconds, "backend": backend.name,
            "mask_truncated_completions": getattr(trainer.args, "mask_truncated_completions", cfg.rl_mask_truncated),
            "unfinished_penalty": cfg.rl_unfinished_penalty, **_length_reference(reward_fn)}


def train_online_dpo(model_name: str, start_adapter, items: list[dict], cards: dict, reward_fn, out_dir, cfg,
                     seed: int) -> dict:
    """Rounds of: sample rl_num_generations replies per prompt, rank by reward, one DPO step on (best, worst)."""
    from .models import choose_backend

    backend = choose_backend(quiet=True)  # before TRL is bound: on its backend this imports Unsloth, which patches TRL
    from datasets import Dataset
    from trl import DPOTrainer

    from .dpo import dpo_config
    from .sampling import generate_replies

    if cfg.rl_beta <= 0:
        raise ParameterError("rl_beta", "> 0 for online_dpo (it is DPO's beta)", cfg.rl_beta)
    model, tok = _start(model_name, start_adapter, _rows(items, cards), cfg, seed)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters() if ".default." in n}
    curves: dict[str, list[float]] = {"reward": [], "reward_std": [], "kl": [], "length": [], "loss": []}
    start = time.perf_counter()
    order = rng(seed, "online-dpo-order").permutation(len(items)).tolist()
    without_pair = 0   # prompts of a round that gave no pair (all samples alike, or none within the filter)
    for step in range(cfg.rl_steps):
        pick = [items[order[(step * cfg.rl_prompts_per_step + j) % len(items)]] for j in range(cfg.rl_prompts_per_step)]
        convs = [cards[it["character_id"]].prompt(it["history"], it.get("user_name")) for it in pick]
        k = cfg.rl_num_generations
        # Unsloth's generate switches to its inference mode and back to training mode (gradient checkpointing on,
        # its generation flag and its cached copies of the LoRA weights dropped) only when it is called in training
        # mode. Called in eval mode it leaves them behind: the DPO step would run with the generation flag set and
        # no checkpointing, and later rounds could sample with an earlier round's cached LoRA copies. Elsewhere
        # sampling runs in eval mode (no dropout); DPOTrainer sets train mode itself.
        if backend.name == "unsloth":
            model.train()
        else:
            model.eval()
        cut: list[bool] = []
        replies = generate_replies(model, tok, [c for c in convs for _ in range(k)], max_new_tokens=cfg.max_new_tokens,
                                   temperature=cfg.rl_temperature, top_p=1.0, batch_size=cfg.gen_batch_size,
                                   seed=seed * 100003 + step, progress=False, cut=cut)
        rewards = np.asarray(reward_fn([it for it in pick for _ in range(k)], replies), dtype=float)
        rewards = (rewards - cfg.rl_unfinished_penalty * np.asarray(cut, dtype=float)).reshape(-1, k)
        cut_rows = np.asarray(cut, dtype=bool).reshape(-1, k)
        curves["reward"].append(float(rewards.mean()))
        curves["reward_std"].append(float(rewards.std(axis=1).mean()))
        curves["length"].append(float(np.mean([len(tok(r)["input_ids"]) for r in replies])))
        pairs = []
        for j, it in enumerate(pick):
            # rl_mask_truncated: a sample the limit cut is never the chosen reply (it may still be the rejected one)
            chosen_ok = ~cut_rows[j] if cfg.rl_mask_truncated else np.ones(k, dtype=bool)
            pair = dpo_pair(rewards[j], chosen_ok, replies[j * k:(j + 1) * k], cfg.rl_max_len_diff,
                            cfg.rl_max_emoji_diff)
            if pair is None:
                without_pair += 1
                continue
            hi, lo = pair
            pairs.append({"prompt": convs[j], "chosen": [{"role": "assistant", "content": replies[j * k + hi]}],
                          "rejected": [{"role": "assistant", "content": replies[j * k + lo]}]})
        if not pairs:
            continue
        if "ref" in model.peft_config:
            model.delete_adapter("ref")
        with tempfile.TemporaryDirectory() as tmp:
            args = dpo_config(tmp, seed + step, beta=cfg.rl_beta, lr=cfg.rl_lr, batch_size=len(pairs), max_steps=1,
                              max_length=cfg.sft_max_length, schedule="constant", warmup=0.0)
            trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok)
            for name, value in anchor.items():   # the reference stays the policy RL started from
                trainer.model.get_parameter(name.replace(".default.", ".ref.")).data.copy_(value)
            trainer.train()
        model = trainer.model
        step_log = [h for h in trainer.state.log_history if "loss" in h]
        if step_log:
            h = step_log[-1]
            curves["loss"].append(float(h["loss"]))
            # DPO's implicit rewards are beta * log(pi/pi_ref); on the policy's own samples their mean / beta
            # estimates the KL to the reference
            curves["kl"].append(float((h.get("rewards/chosen", 0.0) + h.get("rewards/rejected", 0.0))
                                      / (2 * cfg.rl_beta)))
    seconds = time.perf_counter() - start
    save_adapter(model, out_dir, {"stage": "rl", "algorithm": "online_dpo", "base_model": model_name,
                                  "start_adapter": str(start_adapter), "beta": cfg.rl_beta,
                                  "reference": "adapter 'ref' (frozen copy of the start adapter)",
                                  "backend": backend.name, "seed": seed})
    return {"algorithm": "online_dpo", "steps": cfg.rl_steps, "beta": cfg.rl_beta, "curves": curves,
            "reference": "adapter 'ref' (frozen copy of the start adapter)", "seconds": seconds,
            "backend": backend.name, "loss": curves["loss"], "mask_truncated_completions": cfg.rl_mask_truncated,
            "unfinished_penalty": cfg.rl_unfinished_penalty, "max_len_diff": cfg.rl_max_len_diff,
            "max_emoji_diff": cfg.rl_max_emoji_diff, "prompts_without_pair": without_pair,
            **_length_reference(reward_fn)}


def dpo_pair(rewards, chosen_ok, replies: list[str], max_len_diff: int | None = None,
             max_emoji_diff: int | None = None) -> tuple[int, int] | None:
    """Online DPO's (chosen, rejected) among one prompt's samples: the pair with the largest reward gap whose chosen
    reply may be chosen (`chosen_ok`) and whose two replies differ by at most `max_len_diff` words and
    `max_emoji_diff` emoji (annotation's pair filter, so that no surface cue rides along with the reward; None: no
    limit). Without limits: (best allowed, worst), if their replies differ. None when no pair qualifies."""
    from .features import count_emoji, words

    r = np.asarray(rewards, dtype=float)
    if max_len_diff is None and max_emoji_diff is None:   # the pair runs made before the filter trained on, exactly
        if not np.any(chosen_ok):
            return None
        hi, lo = int(np.where(chosen_ok, r, -np.inf).argmax()), int(r.argmin())
        return (hi, lo) if r[hi] > r[lo] and replies[hi] != replies[lo] else None
    n_words = [len(words(x)) for x in replies]
    n_emoji = [count_emoji(x) for x in replies]
    best, best_gap = None, 0.0
    for a in range(len(r)):
        if not chosen_ok[a]:
            continue
        for b in range(len(r)):
            gap = r[a] - r[b]
            if gap <= best_gap or replies[a] == replies[b]:
                continue
            if max_len_diff is not None and abs(n_words[a] - n_words[b]) > max_len_diff:
                continue
            if max_emoji_diff is not None and abs(n_emoji[a] - n_emoji[b]) > max_emoji_diff:
                continue
            best, best_gap = (a, b), gap
    return best


__all__ = ["near_policy_prompts", "prompts", "rl_reward", "length_controlled", "reward_function", "unfinished",
           "end_token_ids", "max_seq_length",
           "train", "train_grpo", "train_online_dpo", "dpo_pair", "losses"]
