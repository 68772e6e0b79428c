"""Annotation: simulated raters turn logged conversations into preference pairs (pairwise engagement ranking).

Each pair records the panel's votes and agreement, so the consensus split (items where raters agree) and the
single-rater labels (the first rater alone) can both be taken from one annotation run.
"""
from __future__ import annotations

import numpy as np

from .seeding import rng
from .world.raters import pairwise_votes
from .world.traffic import turns


def preference_record(item: dict, chosen: str, rejected: str, *, votes: int, n_raters: int, agreement: float,
                      single_rater_agrees: bool, origin: str) -> dict:
    """A preference pair in TRL's conversational form, plus what annotation knows about it."""
    return {"prompt": [{"role": m["role"], "content": m["content"]} for m in item["history"]],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "character_id": item["character_id"], "source": item["source"], "user_name": item.get("user_name"),
            "conversation_id": item["conversation_id"], "turn": item["turn"], "votes_chosen": int(votes),
            "n_raters": int(n_raters), "agreement": float(agreement),
            "single_rater_agrees": bool(single_rater_agrees), "origin": origin}


def rate_alternatives(world, policy, records: list[dict], *, n_pairs: int, n_raters: int, seed: int,
                      temperature: float = 1.0) -> list[dict]:
    """For n_pairs logged assistant turns, sample another reply to the same prompt and let raters rank the two."""
    items = turns(records)
    r = rng(seed, "annotation-pick")
    pick = sorted(r.choice(len(items), size=min(n_pairs, len(items)), replace=False).tolist())
    items = [items[i] for i in pick]
    prompts = [world.cards[it["character_id"]].prompt(it["history"], it.get("user_name")) for it in items]
    alternatives = policy.reply(prompts, seed_key="annotation-alt", temperature=temperature, desc="alternatives")
    keep = [k for k, alt in enumerate(alternatives) if alt.strip() and alt.strip() != items[k]["reply"].strip()]
    items = [items[k] for k in keep]
    alternatives = [alternatives[k] for k in keep]
    measured_a = world.measure(items)
    measured_b = world.measure([dict(it, reply=alt) for it, alt in zip(items, alternatives)])
    panel = pairwise_votes(world, measured_a, measured_b, n_raters=n_raters, seed=seed, key="alternatives")
    out = []
    for it, alt, row in zip(items, alternatives, panel.itertuples()):
        a_wins = bool(row.prefer_a)
        chosen, rejected = (it["reply"], alt) if a_wins else (alt, it["reply"])
        votes = row.votes_a if a_wins else row.n_raters - row.votes_a
        out.append(preference_record(it, chosen, rejected, votes=votes, n_raters=row.n_raters,
                                     agreement=row.agreement, single_rater_agrees=bool(row.first_prefers_a) == a_wins,
                                     origin="policy-resample"))
    return out


def consensus_split(pairs: list[dict], min_agreement: float) -> list[dict]:
    return [p for p in pairs if p["agreement"] >= min_agreement - 1e-9]


def agreement_summary(pairs: list[dict]) -> dict:
    agree = np.array([p["agreement"] for p in pairs]) if pairs else np.zeros(0)
    return {"pairs": len(pairs), "mean_agreement": float(agree.mean()) if len(agree) else None}
