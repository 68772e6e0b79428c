"""Simulated raters: static ratings, pairwise engagement ranking, the two structured questions, and the
steerability workflow. Several raters per item, each with noise and with biases that differ from the users'
truth (see WorldParams: raters over-reward emoji, length and "I feel" phrasing, under-value questions back).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..seeding import rng
from .instructions import instruction_text
from .users import utility


@dataclass
class RaterPool:
    ids: list[str]
    noise: np.ndarray
    emoji_bias: np.ndarray
    length_bias: np.ndarray
    i_feel_bias: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def sample(cls, params, seed: int) -> "RaterPool":
        r = rng(seed, "raters")
        n = params.rater_pool
        # Each rater carries the pool's biases to a different degree (x0.5 to x1.5) and is more or less careful.
        spread = lambda: r.uniform(0.5, 1.5, size=n)  # noqa: E731
        return cls([f"r-{k:02d}" for k in range(n)], params.rater_noise * spread(), params.rater_emoji_bias * spread(),
                   params.rater_length_bias * spread(), params.rater_i_feel_bias * spread())


def perceived(world, measured, pool: RaterPool, rater: np.ndarray) -> np.ndarray:
    """What rater `rater[i]` thinks reply i is worth, before noise: the average user's utility, with the
    question term discounted and the rater's own biases added."""
    p = world.params
    prefs = world.mean_prefs(len(measured))
    prefs["question_appetite"] = prefs["question_appetite"] * p.rater_question_discount
    base = utility(measured, prefs, p)
    emoji = np.minimum(measured["emoji"].to_numpy(float), p.emoji_saturation)
    words = measured["words"].to_numpy(float)
    return (base + pool.emoji_bias[rater] * emoji + pool.length_bias[rater] * np.log((words + 1.0) / 40.0)
            + pool.i_feel_bias[rater] * measured["i_feel"].to_numpy(float))


def _assign(pool: RaterPool, n_items: int, n_raters: int, r: np.random.Generator) -> np.ndarray:
    """(n_items, n_raters) distinct raters per item."""
    k = min(n_raters, len(pool))
    return np.stack([r.choice(len(pool), size=k, replace=False) for _ in range(n_items)]) if n_items else \
        np.zeros((0, k), dtype=int)


def pairwise_votes(world, measured_a, measured_b, *, n_raters: int, seed: int, key: str = "pairs",
                   pool: RaterPool | None = None):
    """Each item judged by n_raters: which reply would keep the user more engaged? Returns a DataFrame with
    votes for A, the majority, agreement (share agreeing with the majority) and the rater ids."""
    import pandas as pd

    pool = pool or RaterPool.sample(world.params, world.seed)
    r = rng(seed, "rater-pairs", key)
    n = len(measured_a)
    who = _assign(pool, n, n_raters, r)
    votes = np.zeros(n, dtype=int)
    first = np.zeros(n, dtype=bool)
    for j in range(who.shape[1]):
        ra = perceived(world, measured_a, pool, who[:, j]) + r.normal(0, 1, n) * pool.noise[who[:, j]]
        rb = perceived(world, measured_b, pool, who[:, j]) + r.normal(0, 1, n) * pool.noise[who[:, j]]
        votes += (ra > rb).astype(int)
        if j == 0:
            first = ra > rb  # what a single-rater label set would record
    k = who.shape[1]
    prefer_a = votes * 2 > k
    ties = votes * 2 == k
    prefer_a = np.where(ties, r.random(n) < 0.5, prefer_a)
    agreement = np.maximum(votes, k - votes) / k
    return pd.DataFrame({"votes_a": votes, "n_raters": k, "prefer_a": prefer_a, "agreement": agreement,
                         "first_rater": [pool.ids[w[0]] for w in who],
                         "first_prefers_a": first,
                         "rater_ids": [",".join(pool.ids[x] for x in w) for w in who]})


def static_ratings(world, measured, *, n_raters: int, seed: int, key: str = "static",
                   pool: RaterPool | None = None):
    """Per (item, rater): a 1-5 quality rating and the two questions always asked (false refusal? templated?)."""
    import pandas as pd

    pool = pool or RaterPool.sample(world.params, world.seed)
    r = rng(seed, "rater-static", key)
    n = len(measured)
    who = _assign(pool, n, n_raters, r)
    refusal = measured["refusal"].to_numpy(bool)
    unsafe = measured["unsafe_prompt"].to_numpy(bool)
    templated = measured["repetition"].to_numpy(float) >= 0.5
    rows = []
    for j in range(who.shape[1]):
        score = perceived(world, measured, pool, who[:, j]) + r.normal(0, 1, n) * pool.noise[who[:, j]]
        likert = np.clip(np.rint(3 + score), 1, 5).astype(int)
        slip = r.random((2, n)) < 0.05  # a rater answers a yes/no question wrongly one time in twenty
        false_refusal = (refusal & ~unsafe) ^ slip[0]
        templ = templated ^ slip[1]
        for i in range(n):
            rows.append(dict(item=i, rater_id=pool.ids[who[i, j]], rating=int(likert[i]),
                             false_refusal=bool(false_refusal[i]), templated=bool(templ[i])))
    return pd.DataFrame(rows)


def steerability_flags(world, items: list[dict], replies: list[str], *, seed: int, key: str = "steer") -> np.ndarray:
    """A rater's verdict 'this reply breaks the card' per reply; a rater misses each broken instruction with
    probability rater_flag_miss, so a reply breaking two rules is flagged more reliably than one breaking one."""
    r = rng(seed, "rater-steer", key)
    flags = np.zeros(len(replies), dtype=bool)
    for i, (it, reply) in enumerate(zip(items, replies)):
        broken = world.cards[it["character_id"]].violations(reply, it.get("user_name"))
        flags[i] = any(r.random() > world.params.rater_flag_miss for _ in broken)
    return flags


def rewrite_prompt(card, history: list[dict], reply: str, user_name: str | None) -> list[dict]:
    """Messages that ask a policy to rewrite a reply that broke the card (the rater's prompted rewrite)."""
    rules = "; ".join(instruction_text(i) for i in card.instructions)
    ask = (f"Rewrite this reply so that it follows every rule ({rules}). Keep it in character and answer the "
           f"user's last message. Reply with the rewritten text only.\n\nReply: {reply}")
    return card.prompt(history + [{"role": "user", "content": ask}], user_name)


def compliant_rewrites(world, items: list[dict], replies: list[str], policy=None, *, seed_key="rewrite") -> list[str]:
    """The steerability workflow's compliant reply: a prompted rewrite by the policy (if given), repaired by
    the card's rule-based edits wherever the model still breaks an instruction."""
    drafts = list(replies)
    if policy is not None and items:
        prompts = [rewrite_prompt(world.cards[it["character_id"]], it["history"], rep, it.get("user_name"))
                   for it, rep in zip(items, replies)]
        drafts = [d if d.strip() else rep for d, rep in
                  zip(policy.reply(prompts, seed_key=seed_key, desc="rewrites"), replies)]
    return [world.cards[it["character_id"]].enforce(d, it.get("user_name")) for it, d in zip(items, drafts)]
