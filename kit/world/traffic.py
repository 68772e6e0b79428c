"""Traffic: sessions between simulated users and a deployed policy that really generates.

All sessions of a day advance turn by turn together, so the policy replies in batches. After each reply the
world measures it, computes the reader's hidden utility, and samples the signals; p(continue) decides whether
the user writes again. Records follow the conversation contract (kit/data.py); what only the world knows
(segment, utility, intents) sits under "hidden", which no training or annotation code reads.
"""
from __future__ import annotations

import numpy as np

from ..seeding import rng
from .prompts import user_message
from .users import sample_signals


def favourite_category(favourites: dict, present, r: np.random.Generator) -> str:
    """A category the user likes, among those the cast has, drawn by the user's weights. A cast of one's own may
    have none of them (a learner likes tutors; a cast of companions has none): then any of the cast's categories."""
    cats = [c for c in favourites if favourites[c] > 0 and c in present]
    p = np.array([favourites[c] for c in cats], dtype=float)
    if not cats:
        cats, p = sorted(present), np.ones(len(present))
    return cats[int(r.choice(len(cats), p=p / p.sum()))]


def _pick_card(world, favourites: dict, r: np.random.Generator):
    cat = favourite_category(favourites, {k.category for k in world.cards.values()}, r)
    ids = sorted(k for k, card in world.cards.items() if card.category == cat)
    return world.cards[ids[int(r.integers(len(ids)))]]


def plan_sessions(world, n_sessions: int, n_internal: int, day: int, seed: int) -> list[dict]:
    """Who talks to which character today. The same seed and day give the same plan for any policy, so two
    policies meet the same users (common random numbers)."""
    r = rng(seed, "traffic-plan", day)
    plan = []
    for source, pop, n in (("user", world.population, n_sessions), ("internal", world.testers, n_internal)):
        users = r.choice(len(pop), size=n, replace=len(pop) < n)
        for k, i in enumerate(users):
            segment = pop.segments[i] if source == "user" else "internal"
            plan.append(dict(session=f"d{day}-{source[0]}{k:05d}", source=source, user_id=pop.user_ids[i],
                             user_name=pop.names[i], segment=segment,
                             card=_pick_card(world, pop.favourite_categories[i], r)))
    return plan


def collect_traffic(world, policy, *, n_sessions: int, n_internal_sessions: int = 0, max_turns: int = 4,
                    day: int = 0, seed: int = 0, progress: bool = True) -> list[dict]:
    """Run today's sessions with `policy` (a kit.sampling.Policy) and return them as conversation records."""
    p = world.params
    plan = plan_sessions(world, n_sessions, n_internal_sessions, day, seed)
    streams = [rng(seed, "traffic-session", day, s["session"]) for s in plan]
    sig_streams = [rng(seed, "traffic-signals", day, s["session"]) for s in plan]
    sessions = [dict(s, messages=[], hidden=dict(segment=s["segment"], utility=[], intents=[], pii=[],
                                                 unsafe=False)) for s in plan]
    active = list(range(len(sessions)))
    for turn in range(max_turns):
        if not active:
            break
        for i in active:
            s = sessions[i]
            msg = user_message(s["card"], s["segment"], turn, streams[i], user_name=s["user_name"],
                               pii_rate=p.pii_rate, typo_rate=p.typo_rate, unsafe_rate=p.unsafe_rate)
            s["messages"].append({"role": "user", "content": msg["content"]})
            s["hidden"]["intents"].append(msg["intent"])
            s["hidden"]["pii"].append(msg["pii"])
            s["hidden"]["unsafe"] = s["hidden"]["unsafe"] or msg["unsafe"]
        prompts = [sessions[i]["card"].prompt(sessions[i]["messages"], sessions[i]["user_name"]) for i in active]
        replies = policy.reply(prompts, seed_key=f"traffic-{day}-{turn}", desc=f"day {day} turn {turn + 1}",
                               progress=progress)
        items = []
        for i, reply in zip(active, replies):
            s = sessions[i]
            items.append(dict(character_id=s["card"].id, reply=reply, user_message=s["messages"][-1]["content"],
                              user_name=s["user_name"], unsafe=s["hidden"]["unsafe"],
                              earlier=[m["content"] for m in s["messages"] if m["role"] == "assistant"]))
        measured = world.measure(items)
        u = world.utility(measured, [sessions[i]["user_id"] for i in active])
        still = []
        for k, i in enumerate(active):
            s = sessions[i]
            sig = {name: int(v[0]) for name, v in sample_signals(u[k:k + 1], p, sig_streams[i]).items()}
            s["messages"].append({"role": "assistant", "content": replies[k], "signals": sig})
            s["hidden"]["utility"].append(round(float(u[k]), 6))
            if sig["continue"] and turn + 1 < max_turns:
                still.append(i)
        active = still
    return [_record(s, day, policy.name) for s in sessions]


def _record(s: dict, day: int, policy_name: str) -> dict:
    return {"conversation_id": s["session"], "character_id": s["card"].id, "source": s["source"],
            "user_id": s["user_id"], "user_name": s["user_name"], "day": day, "policy": policy_name,
            "messages": s["messages"], "hidden": s["hidden"]}


def turns(records: list[dict]) -> list[dict]:
    """Every assistant turn of the records as a flat item: the prompt it answered and the reply with signals."""
    out = []
    for rec in records:
        earlier = []
        for k, m in enumerate(rec["messages"]):
            if m["role"] != "assistant":
                continue
            history = rec["messages"][:k]
            user_msgs = [h for h in history if h["role"] == "user"]
            hidden = rec.get("hidden") or {}
            t = len(earlier)
            out.append(dict(conversation_id=rec["conversation_id"], character_id=rec["character_id"],
                            source=rec["source"], user_id=rec.get("user_id"), user_name=rec.get("user_name"),
                            turn=t, history=history, reply=m["content"], signals=m.get("signals", {}),
                            user_message=user_msgs[-1]["content"] if user_msgs else "",
                            earlier=list(earlier), unsafe=bool(hidden.get("unsafe", False)),
                            utility=(hidden.get("utility") or [None] * (t + 1))[t] if hidden else None))
            earlier.append(m["content"])
    return out


def traffic_metrics(records: list[dict]) -> dict:
    """What the logs themselves say (works for imported real traffic too): volume and signal rates per source."""
    import numpy as np

    items = turns(records)
    out = {"conversations": len(records), "replies": len(items),
           "messages_per_conversation": float(np.mean([len(r["messages"]) for r in records])) if records else 0.0}
    for source in ("user", "internal"):
        sig = [it["signals"] for it in items if it["source"] == source and it["signals"]]
        if sig:
            out[f"signal_rates_{source}"] = {k: float(np.mean([s.get(k, 0) for s in sig])) for k in sig[0]}
    return out
