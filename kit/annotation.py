"""Annotation: simulated raters turn curated prompts into preference data, as the paper's raters do.

For every prompt there are two candidates: the reply logged in traffic, and a second one from the candidate pool
(another policy of the pool sampled at a higher temperature, or a prompted "expert" rewrite of the logged reply).
Then, per pair:

1. privacy: candidates are redacted like traffic, so nothing identifiable reaches the raters;
2. steerability workflow: raters check both candidates against the card; when both break it, a rater supplies
   a compliant reply (a prompted rewrite by the policy, repaired by the card's rule-based edits) that is
   preferred over the better of the two;
3. pair filter: pairs whose candidates differ by more than `max_len_diff` words or `max_emoji_diff` emoji are
   dropped, so reward models cannot learn those surface cues;
4. pairwise engagement ranking by a panel of raters: the majority decides, the panel's agreement is kept, and so
   is the first rater's vote alone (what a single-rater label set would hold);
5. the two questions always asked, per candidate: is it a false refusal? is it templated?

Pairs come out in TRL's conversational preference form (kit/data.py) with the panel's votes.
"""
from __future__ import annotations

import numpy as np

from .errors import KitError, ParameterError
from .privacy import assert_no_pii, redact, redact_records  # assert_no_pii lived here: kept importable
from .seeding import rng
from .world.raters import compliant_rewrites, pairwise_votes, static_ratings, steerability_flags

EXPERT_REWRITE = ("Rewrite the reply below to be more engaging for this user while staying in character and "
                  "following every rule. Reply with the rewritten text only.\n\nReply: {reply}")


def expert_rewrite_prompt(card, item: dict) -> list[dict]:
    """The messages asking a policy to rewrite the logged reply of `item` as an expert would."""
    return card.prompt(item["history"] + [{"role": "user", "content": EXPERT_REWRITE.format(reply=item["reply"])}],
                       item.get("user_name"))


def preference_record(item: dict, chosen: str, rejected: str, *, votes: int, n_raters: int, agreement: float,
                      single_rater_agrees: bool, origin: str) -> dict:
    """A preference pair in TRL's conversational form, plus what annotation knows about it."""
    return {"prompt": [{"role": m["role"], "content": m["content"]} for m in item["history"]],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "character_id": item["character_id"], "source": item["source"], "user_name": item.get("user_name"),
            "user_id": item.get("user_id"), "conversation_id": item["conversation_id"], "turn": item["turn"],
            "prompt_id": item.get("prompt_id"), "votes_chosen": int(votes), "n_raters": int(n_raters),
            "agreement": float(agreement), "single_rater_agrees": bool(single_rater_agrees), "origin": origin}


# ---------------------------------------------------------------------------------------------- candidates
def candidate_pool(world, items: list[dict], pool: dict, *, seed: int, temperature: float = 1.0,
                   rewrite_share: float = 0.5) -> tuple[list[str], list[str]]:
    """A second candidate per prompt: a prompted expert rewrite of the logged reply (rewrite_share of prompts),
    or a fresh sample from a policy of the pool, taken in turn. Returns (replies, origins)."""
    if not pool:
        raise ParameterError("pool", "at least one policy")
    r = rng(seed, "candidate-pool")
    names = sorted(pool)
    use_rewrite = r.random(len(items)) < rewrite_share
    replies, origins = [""] * len(items), [""] * len(items)
    jobs: dict[str, list[int]] = {}
    for i in range(len(items)):
        key = "rewrite" if use_rewrite[i] else names[i % len(names)]
        jobs.setdefault(key, []).append(i)
    for key, idx in sorted(jobs.items()):
        if key == "rewrite":
            policy = pool[names[0]]
            prompts = [expert_rewrite_prompt(world.cards[items[i]["character_id"]], items[i]) for i in idx]
            out = policy.reply(prompts, seed_key=f"expert-rewrite-{seed}", desc="expert rewrites")
        else:
            policy = pool[key]
            prompts = [world.cards[items[i]["character_id"]].prompt(items[i]["history"], items[i].get("user_name"))
                       for i in idx]
            out = policy.reply(prompts, seed_key=f"pool-{seed}", temperature=temperature, desc=f"pool: {key}")
        for i, text in zip(idx, out):
            replies[i], origins[i] = text, ("expert-rewrite" if key == "rewrite" else f"policy:{key}")
    return replies, origins


# ---------------------------------------------------------------------------------------------- annotation
def annotate_pairs(world, items: list[dict], candidates: list[str], origins: list[str] | None = None, *,
                   n_raters: int, seed: int, key: str, max_len_diff: int | None = 40, max_emoji_diff: int | None = 2,
                   rewrite_policy=None, steerability: bool = True, steer_share: float = 1.0) -> dict:
    """Annotate (logged reply, candidate) pairs. Returns {"pairs", "ratings", "report"}.

    The steerability workflow is its own task: it takes every internal-tester prompt (testers probe the card)
    and `steer_share` of the user prompts; the rest go to engagement ranking even when both candidates fail."""
    if len(items) != len(candidates):
        raise KitError(f"annotation: {len(items)} prompts but {len(candidates)} candidates")
    origins = origins or ["candidate"] * len(items)
    a_text = [redact(it["reply"])[0] for it in items]
    b_text = [redact(c)[0] for c in candidates]
    usable = [i for i in range(len(items)) if a_text[i].strip() and b_text[i].strip() and
              a_text[i].strip() != b_text[i].strip()]
    report = {"prompts": len(items), "identical_or_empty": len(items) - len(usable), "dropped_length": 0,
              "dropped_emoji": 0, "steerability_rewrites": 0, "ranked": 0}
    items = [items[i] for i in usable]
    a_text, b_text, origins = [a_text[i] for i in usable], [b_text[i] for i in usable], [origins[i] for i in usable]
    if not items:
        report["pairs"] = 0
        return {"pairs": [], "ratings": [], "report": report}
    measure = lambda texts: world.measure([dict(it, reply=t) for it, t in zip(items, texts)])  # noqa: E731
    ma, mb = measure(a_text), measure(b_text)
    panel = pairwise_votes(world, ma, mb, n_raters=n_raters, seed=seed, key=f"{key}-rank")

    # steerability workflow: both candidates break the card -> a rater supplies a compliant reply
    both_fail = np.zeros(len(items), dtype=bool)
    if steerability:
        in_workflow = np.array([it["source"] == "internal" for it in items]) | \
            (rng(seed, "steer-assign", key).random(len(items)) < steer_share)
        flag_a = steerability_flags(world, items, a_text, seed=seed, key=f"{key}-steer-a")
        flag_b = steerability_flags(world, items, b_text, seed=seed, key=f"{key}-steer-b")
        both_fail = flag_a & flag_b & in_workflow
        report["steerability_reviewed"] = int(in_workflow.sum())
    fail_idx = np.flatnonzero(both_fail)
    better = [a_text[i] if panel.prefer_a.iat[i] else b_text[i] for i in fail_idx]
    fixed = compliant_rewrites(world, [items[i] for i in fail_idx], better, rewrite_policy, seed_key=f"{key}-fix")
    pairs = []
    for i, good in zip(fail_idx, fixed):
        good = redact(good)[0]
        worse = a_text[i] if panel.prefer_a.iat[i] else b_text[i]
        if good.strip() != worse.strip():
            pairs.append(preference_record(items[i], good, worse, votes=1, n_raters=1, agreement=1.0,
                                           single_rater_agrees=True, origin="steerability-rewrite"))
            report["steerability_rewrites"] += 1

    # pair filter on surface differences, then the panel's ranking
    len_diff = np.abs(ma["words"].to_numpy() - mb["words"].to_numpy())
    emoji_diff = np.abs(ma["emoji"].to_numpy() - mb["emoji"].to_numpy())
    for i in np.flatnonzero(~both_fail):
        if max_len_diff is not None and len_diff[i] > max_len_diff:
            report["dropped_length"] += 1
            continue
        if max_emoji_diff is not None and emoji_diff[i] > max_emoji_diff:
            report["dropped_emoji"] += 1
            continue
        row = panel.iloc[i]
        a_wins = bool(row.prefer_a)
        chosen, rejected = (a_text[i], b_text[i]) if a_wins else (b_text[i], a_text[i])
        votes = row.votes_a if a_wins else row.n_raters - row.votes_a
        pairs.append(preference_record(items[i], chosen, rejected, votes=votes, n_raters=row.n_raters,
                                       agreement=row.agreement, single_rater_agrees=bool(row.first_prefers_a) == a_wins,
                                       origin=f"logged-vs-{origins[i]}"))
        report["ranked"] += 1

    # the two questions always asked, per candidate
    ratings = []
    for label, texts, measured in (("logged", a_text, ma), ("candidate", b_text, mb)):
        table = static_ratings(world, measured, n_raters=n_raters, seed=seed, key=f"{key}-static-{label}")
        agg = table.groupby("item").agg(rating=("rating", "mean"), false_refusal=("false_refusal", "mean"),
                                        templated=("templated", "mean"))
        for i, row in agg.iterrows():
            ratings.append({"prompt_id": items[i].get("prompt_id"), "candidate": label, "reply": texts[i],
                            "rating": float(row.rating), "false_refusal": bool(row.false_refusal > 0.5),
                            "templated": bool(row.templated > 0.5)})
    report["pairs"] = len(pairs)
    return {"pairs": pairs, "ratings": ratings, "report": report}


def rate_alternatives(world, policy, records: list[dict], *, n_pairs: int, n_raters: int, seed: int,
                      temperature: float = 1.0) -> list[dict]:
    """Sample data: for n_pairs logged turns, another sample from the same policy, ranked by a rater panel
    (no pair filter, no steerability rewrites)."""
    from .world.traffic import turns

    items = turns(records)
    pick = sorted(rng(seed, "annotation-pick").choice(len(items), size=min(n_pairs, len(items)),
                                                      replace=False).tolist())
    items = [items[i] for i in pick]
    prompts = [world.cards[it["character_id"]].prompt(it["history"], it.get("user_name")) for it in items]
    alternatives = policy.reply(prompts, seed_key="annotation-alt", temperature=temperature, desc="alternatives")
    return annotate_pairs(world, items, alternatives, ["policy-resample"] * len(items), n_raters=n_raters, seed=seed,
                          key="alternatives", max_len_diff=None, max_emoji_diff=None, steerability=False)["pairs"]


# ---------------------------------------------------------------------------------------------- splits and checks
def consensus_split(pairs: list[dict], min_agreement: float) -> list[dict]:
    """Ranked pairs on which at least `min_agreement` of a multi-rater panel agreed."""
    return [p for p in pairs if p["n_raters"] > 1 and p["agreement"] >= min_agreement - 1e-9]


def single_rater_view(pairs: list[dict]) -> list[dict]:
    """The same ranked pairs as one rater labelled them: chosen and rejected swap where the first rater
    disagreed with the panel."""
    out = []
    for p in pairs:
        if p["n_raters"] <= 1:
            continue
        q = dict(p, n_raters=1, agreement=1.0, votes_chosen=1)
        if not p["single_rater_agrees"]:
            q["chosen"], q["rejected"] = p["rejected"], p["chosen"]
        out.append(q)
    return out


def annotate(world, train_items: list[dict], eval_items: list[dict], pool: dict, cfg, seed: int,
             rewrite_policy=None) -> dict:
    """Annotate a capped, seeded sample of training prompts and every evaluation prompt.

    Evaluation pairs are ranked by the full panel, without steerability rewrites, so their consensus split and
    single-rater view measure reward models on the raters' own judgement."""
    r = rng(seed, "annotation-sample")
    cap = min(cfg.max_annotated_prompts, len(train_items))
    train_pick = sorted(r.choice(len(train_items), size=cap, replace=False).tolist()) if cap else []
    train_items = [train_items[i] for i in train_pick]
    eval_cap = min(len(eval_items), max(cfg.max_annotated_prompts // 2, 1))
    eval_pick = sorted(r.choice(len(eval_items), size=eval_cap, replace=False).tolist()) if eval_cap else []
    eval_items = [eval_items[i] for i in eval_pick]
    cand, origins = candidate_pool(world, train_items + eval_items, pool, seed=seed, temperature=cfg.pool_temperature,
                                   rewrite_share=cfg.rewrite_share)
    n = len(train_items)
    train = annotate_pairs(world, train_items, cand[:n], origins[:n], n_raters=cfg.n_raters, seed=seed, key="train",
                           max_len_diff=cfg.max_len_diff, max_emoji_diff=cfg.max_emoji_diff,
                           rewrite_policy=rewrite_policy, steer_share=cfg.steer_share)
    held = annotate_pairs(world, eval_items, cand[n:], origins[n:], n_raters=cfg.n_raters, seed=seed, key="eval",
                          max_len_diff=cfg.max_len_diff, max_emoji_diff=cfg.max_emoji_diff, steerability=False)
    consensus = consensus_split(held["pairs"], cfg.consensus_agreement)
    single = single_rater_view(held["pairs"])
    out = {"train_pairs": train["pairs"], "eval_pairs": held["pairs"], "eval_consensus": consensus,
           "eval_single_rater": single, "ratings": train["ratings"] + held["ratings"]}
    scanned = sum(assert_no_pii(v, f"annotation/{k}") for k, v in out.items())
    out["report"] = {"train": train["report"], "eval": held["report"], "consensus_pairs": len(consensus),
                     "consensus_share": len(consensus) / max(1, len(held["pairs"])),
                     "single_rater_agrees_with_panel": float(np.mean([p["single_rater_agrees"] for p in held["pairs"]]))
                     if held["pairs"] else None,
                     "texts_scanned_for_pii": scanned, "pii_found": 0}
    return out


def import_labels(path, cards: dict) -> list[dict]:
    """Real preference labels (`labels_path` of 02, `pairs_path` of 03, `dpo_path` of 05): the contract
    (kit/data.py) and the cast checked, then the privacy stage, every field redacted, and the final scan."""
    from .data import load_preferences

    pairs, _ = redact_records(load_preferences(path, cards))
    for p in pairs:
        p.setdefault("n_raters", 1)
        p.setdefault("agreement", 1.0)
        p.setdefault("single_rater_agrees", True)
        p.setdefault("origin", "imported")
        p.setdefault("source", "user")
    assert_no_pii(pairs, str(path))
    return pairs


def load_labels(run, generation: int, name: str, *, accumulate: bool = True) -> list[dict]:
    """Annotation set `name` (train_pairs, eval_consensus, ...) of generation `generation`, or, with `accumulate`,
    of every generation up to it that has one, oldest first: the labelled set grows generation after generation
    as a production annotation effort does, instead of each reward model starting from a few dozen pairs. Train
    and evaluation sets stay apart across generations: the held-out split hashes the conversation's opening, so
    an opening is on the same side in every generation."""
    from .data import load_dataset_dir

    out = []
    for g in range(0 if accumulate else generation, generation + 1):
        path = run.stage(g, "annotation", name, create=False)
        if path.exists():
            out += [dict(p, annotated_in=g) for p in load_dataset_dir(path).to_list()]
        elif g == generation:
            raise KitError(f"{path}: not found (run notebook 02 for generation {g} first)")
    return out
