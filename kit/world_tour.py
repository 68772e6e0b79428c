"""The world tour: what notebook 01 shows a learner about the synthetic world (the cast, the users' hidden
preferences, the hidden utility, a day of traffic, the raters' biases), computed here so the notebook stays a
story. A view of the world, not part of it: kit/world/ simulates, this module only looks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .features import FEATURES
from .world.instructions import instruction_text
from .world.params import PREFERENCES
from .world.raters import RaterPool, pairwise_votes
from .world.traffic import traffic_metrics, turns


def cards_table(cards: dict) -> pd.DataFrame:
    return pd.DataFrame([{"id": c.id, "name": c.name, "category": c.category,
                          "instructions": " | ".join(instruction_text(i) for i in c.instructions)}
                         for c in cards.values()])


def segment_table(world) -> pd.DataFrame:
    df = world.population.table()
    table = df.groupby("segment")[list(PREFERENCES)].mean().round(2)
    table.insert(0, "users", df.groupby("segment").size())
    return table


def _variants(base: str) -> dict[str, str]:
    """Edits of one reply that change a single feature each."""
    return {
        "as is": base,
        "+ question back": base.rstrip(".!") + ". What do you think?",
        "+ 2 emoji": base + " 😊✨",
        "+ 8 emoji": base + " 😊✨🎉🔥💖🌟😂👍",
        "refusal": "I'm sorry, but I can't help with that.",
        "preachy": base + " It's important to remember to always be respectful and kind.",
        "breaks character": "As an AI language model, I don't have personal experiences. " + base,
        "3x longer": " ".join([base] * 3),
        "repeats last turn": base,
    }


def utility_response(world, sample_reply: str | None = None, user_message: str = "hey! how's your day going?"):
    """Mean and spread (across users) of the hidden utility for one reply and single-feature edits of it,
    per card. Returns a long DataFrame: variant, card, utility mean, 10th and 90th percentile over users."""
    base = sample_reply or "It has been a lovely day, thank you for asking, I spent it exploring the old harbour."
    rows = []
    users = world.population.user_ids
    for card in world.cards.values():
        name = world.population.names[0]
        variants = _variants(card.enforce(base, name))
        items = []
        for label, text in variants.items():
            earlier = [text] if label == "repeats last turn" else []
            items.append(dict(character_id=card.id, reply=text, user_message=user_message, user_name=name,
                              earlier=earlier))
        measured = world.measure(items)
        for k, label in enumerate(variants):
            row = measured.iloc[[k] * len(users)].reset_index(drop=True)
            u = world.utility(row, users)
            rows.append(dict(variant=label, card=card.id, mean=u.mean(), p10=np.percentile(u, 10),
                             p90=np.percentile(u, 90)))
    return pd.DataFrame(rows)


def length_curve(world, lengths=(3, 6, 10, 15, 20, 30, 45, 60, 90, 130, 180)) -> pd.DataFrame:
    """Mean utility per segment as the reply grows (a plain on-topic filler reply, no instructions broken)."""
    card = next(iter(world.cards.values()))
    name = world.population.names[0]
    filler = ("the harbour is quiet tonight and the lanterns sway as the boats rock gently while we talk about "
              "everything and nothing under the bright stars above the old stone pier ") * 12
    items = []
    for n in lengths:
        text = " ".join(filler.split()[:n]) + "."
        items.append(dict(character_id=card.id, reply=text, user_message="tell me about the harbour",
                          user_name=name, earlier=[]))
    measured = world.measure(items)
    # Hold everything but length fixed: cutting the filler also moves its relevance to the message, its
    # sentiment and the card's own length limit, which would blur the curve.
    measured = measured.assign(following=1.0, relevance=world.params.relevance_center, sentiment=0.0,
                               violations=0, positive=False)
    df = world.population.table()
    rows = []
    for k, n in enumerate(lengths):
        row = measured.iloc[[k] * len(df)].reset_index(drop=True)
        u = world.utility(row, world.population.user_ids)
        for seg, val in pd.Series(u).groupby(df["segment"]).mean().items():
            rows.append(dict(words=n, segment=seg, utility=val))
    return pd.DataFrame(rows)


def raters_vs_users(world, records: list[dict], n_raters: int = 5, seed: int = 0) -> pd.DataFrame:
    """For logged replies, edits that add one feature: how often raters prefer the edit, and how often the
    world's users (by hidden utility) are better off. Where the two differ, the raters are biased."""
    items = [it for it in turns(records) if it["reply"].strip()]
    if not items:
        return pd.DataFrame()
    edits = {
        "+ 3 emoji": lambda t: t + " 😊✨🎉",
        "twice as long": lambda t: t + " " + t,
        "+ 'I feel' phrase": lambda t: "I feel so happy you asked! " + t,
        "+ question back": lambda t: t.rstrip() + " What about you?",
        "+ lecture": lambda t: t + " It's important to remember to always be respectful.",
    }
    base = world.measure(items)
    u_base = world.utility(base, [it["user_id"] for it in items])
    pool = RaterPool.sample(world.params, world.seed)
    rows = []
    for label, edit in edits.items():
        edited_items = [dict(it, reply=edit(it["reply"])) for it in items]
        edited = world.measure(edited_items)
        u_edit = world.utility(edited, [it["user_id"] for it in items])
        votes = pairwise_votes(world, edited, base, n_raters=n_raters, seed=seed, key=f"tour-{label}", pool=pool)
        rows.append({"edit": label, "raters prefer the edit": float(votes["prefer_a"].mean()),
                     "users better off": float((u_edit > u_base).mean()),
                     "mean utility change": float((u_edit - u_base).mean())})
    return pd.DataFrame(rows)


def traffic_summary(world, records: list[dict]) -> dict:
    """What the logs say (traffic_metrics), plus what only the world knows: overall signal rates, the hidden
    utility, reply length and emoji rate, and how many user messages carried planted personal data."""
    items = turns(records)
    sig = pd.DataFrame([it["signals"] for it in items])
    util = np.array([it["utility"] for it in items], dtype=float)
    measured = world.measure(items) if items else pd.DataFrame(columns=FEATURES)
    return dict(traffic_metrics(records),
                signal_rates={k: float(v) for k, v in sig.mean().items()},
                mean_utility=float(util.mean()), mean_words=float(measured["words"].mean()),
                emoji_rate=float((measured["emoji"] > 0).mean()),
                user_messages_with_pii=sum(p is not None for r in records for p in r["hidden"]["pii"]))
