"""Annotation (step 2 of the method): simulated raters turn curated prompts into preference data, as the paper's
raters do.

Every prompt has several candidates: the reply logged in traffic, and `candidates_per_prompt` more from the
candidate pool (fresh samples from the policies of the pool, and prompted "expert" rewrites of the logged reply).
Raters rank every pair of a prompt's candidates, as InstructGPT's labellers ranked K samples: K candidates give
K(K-1)/2 pairs for K-1 generations, which is what makes annotation affordable where generating is the cost.
Then, per prompt:

1. privacy: candidates are redacted like traffic, so nothing identifiable reaches the raters;
2. steerability workflow: raters check the candidates against the card; when every candidate breaks it, a rater
   supplies a compliant reply (a prompted rewrite by the policy, repaired by the card's rule-based edits) that is
   preferred over the panel's favourite;
3. pair filter: pairs whose candidates differ by more than `max_len_diff` words or `max_emoji_diff` emoji are
   dropped, so reward models cannot learn those surface cues;
4. pairwise engagement ranking by a panel of raters: the majority decides, the panel's agreement is kept, and so
   is the first rater's vote alone (what a single-rater label set would hold);
5. the two questions always asked, per candidate: is it a false refusal? is it templated?

Pairs come out in TRL's conversational preference form (kit/data.py) with the panel's votes. The training
prompts' candidates are kept too: rejection sampling (kit/rejection.py) picks the SFT set from them, so every
generated reply is used twice.
"""
from __future__ import annotations

import numpy as np

from .errors import KitError, ParameterError
from .privacy import assert_no_pii, redact, redact_records
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
                   rewrite_share: float = 0.5, per_prompt: int = 1) -> list[list[dict]]:
    """`per_prompt` new candidates for each prompt: prompted expert rewrites of the logged reply (rewrite_share of
    the slots) and fresh samples from the policies of the pool, taken in turn. Returns, per prompt, a list of
    {"reply", "origin"}."""
    if not pool:
        raise ParameterError("pool", "at least one policy")
    r = rng(seed, "candidate-pool")
    names = sorted(pool)
    exact = per_prompt * rewrite_share
    n_rewrite = np.floor(exact).astype(int) + (r.random(len(items)) < exact - np.floor(exact))
    out: list[list[dict]] = [[{} for _ in range(per_prompt)] for _ in items]
    jobs: dict[tuple, list[int]] = {}
    for i in range(len(items)):
        for j in range(per_prompt):
            key = ("rewrite", j) if j < n_rewrite[i] else (names[(i + j) % len(names)], j)
            jobs.setdefault(key, []).append(i)
    for (name, j), idx in sorted(jobs.items()):
        cards = [world.cards[items[i]["character_id"]] for i in idx]
        suffix = "" if j == 0 else f"-{j}"   # the first slot draws what a single candidate drew before
        if name == "rewrite":
            prompts = [expert_rewrite_prompt(c, items[i]) for c, i in zip(cards, idx)]
            texts = pool[names[0]].reply(prompts, seed_key=f"expert-rewrite-{seed}{suffix}", desc="expert rewrites")
        else:
            prompts = [c.prompt(items[i]["history"], items[i].get("user_name")) for c, i in zip(cards, idx)]
            texts = pool[name].reply(prompts, seed_key=f"pool-{seed}{suffix}", temperature=temperature,
                                     desc=f"pool: {name}")
        for i, text in zip(idx, texts):
            out[i][j] = {"reply": text, "origin": "expert-rewrite" if name == "rewrite" else f"policy:{name}"}
    return out


def _candidate_lists(items: list[dict], candidates, origins) -> list[list[dict]]:
    """Per prompt: the logged reply, then the candidates (one string per prompt, or a list of {"reply", "origin"}),
    each redacted; empty and repeated texts dropped."""
    out = []
    for n, (it, cands) in enumerate(zip(items, candidates)):
        if isinstance(cands, str):
            cands = [{"reply": cands, "origin": (origins or ["candidate"] * len(items))[n]}]
        seen, kept = set(), []
        for c in [{"reply": it.get("reply", ""), "origin": "logged"}] + list(cands):
            text = redact(c["reply"])[0].strip()
            if text and text not in seen:
                seen.add(text)
                kept.append({"reply": text, "origin": c["origin"]})
        out.append(kept)
    return out


# ---------------------------------------------------------------------------------------------- annotation
def annotate_pairs(world, items: list[dict], candidates: list, origins: list[str] | None = None, *,
                   n_raters: int, seed: int, key: str, max_len_diff: int | None = 40, max_emoji_diff: int | None = 2,
                   rewrite_policy=None, steerability: bool = True, steer_share: float = 1.0) -> dict:
    """Annotate every pair among each prompt's logged reply and candidates (`candidates`: one string per prompt,
    or a list of {"reply", "origin"} per prompt). Returns {"pairs", "ratings", "candidates", "report"};
    "candidates" holds each prompt's redacted candidate list, logged reply first.

    The steerability workflow is its own task: it takes every internal-tester prompt (testers probe the card)
    and `steer_share` of the user prompts; the rest go to engagement ranking only."""
    import itertools

    if len(items) != len(candidates):
        raise KitError(f"annotation: {len(items)} prompts but {len(candidates)} candidates")
    lists = _candidate_lists(items, candidates, origins)
    usable = [i for i in range(len(items)) if len(lists[i]) >= 2]
    report = {"prompts": len(items), "identical_or_empty": len(items) - len(usable), "candidates": 0,
              "pairs_considered": 0, "dropped_length": 0, "dropped_emoji": 0, "steerability_rewrites": 0,
              "ranked": 0}
    items, lists = [items[i] for i in usable], [lists[i] for i in usable]
    kept_candidates = [dict(_prompt_fields(it), candidates=c) for it, c in zip(items, lists)]
    if not items:
        report["pairs"] = 0
        return {"pairs": [], "ratings": [], "candidates": [], "report": report}
    owner = [i for i, cands in enumerate(lists) for _ in cands]            # flat candidate -> prompt
    flat = [c for cands in lists for c in cands]
    report["candidates"] = len(flat)
    measured = world.measure([dict(items[i], reply=c["reply"]) for i, c in zip(owner, flat)])
    starts = np.cumsum([0] + [len(c) for c in lists])
    a_idx, b_idx = [], []
    for i in range(len(items)):
        for a, b in itertools.combinations(range(starts[i], starts[i + 1]), 2):
            a_idx.append(a)
            b_idx.append(b)
    report["pairs_considered"] = len(a_idx)
    ma, mb = measured.iloc[a_idx].reset_index(drop=True), measured.iloc[b_idx].reset_index(drop=True)
    panel = pairwise_votes(world, ma, mb, n_raters=n_raters, seed=seed, key=f"{key}-rank")

    pairs = []
    if steerability:   # every candidate breaks the card -> a rater supplies a compliant reply
        in_workflow = np.array([it["source"] == "internal" for it in items]) | \
            (rng(seed, "steer-assign", key).random(len(items)) < steer_share)
        flags = steerability_flags(world, [items[i] for i in owner], [c["reply"] for c in flat], seed=seed,
                                   key=f"{key}-steer")
        wins = np.zeros(len(flat))
        for a, b, prefer_a in zip(a_idx, b_idx, panel.prefer_a.to_numpy()):
            wins[a if prefer_a else b] += 1
        fail = [i for i in range(len(items)) if in_workflow[i] and flags[starts[i]:starts[i + 1]].all()]
        report["steerability_reviewed"] = int(in_workflow.sum())
        favourite = [flat[starts[i] + int(np.argmax(wins[starts[i]:starts[i + 1]]))]["reply"] for i in fail]
        fixed = compliant_rewrites(world, [items[i] for i in fail], favourite, rewrite_policy, seed_key=f"{key}-fix")
        for i, good, worse in zip(fail, fixed, favourite):
            good = redact(good)[0]
            if good.strip() != worse.strip():
                pairs.append(preference_record(items[i], good, worse, votes=1, n_raters=1, agreement=1.0,
                                               single_rater_agrees=True, origin="steerability-rewrite"))
                report["steerability_rewrites"] += 1

    # pair filter on surface differences, then the panel's ranking
    len_diff = np.abs(ma["words"].to_numpy() - mb["words"].to_numpy())
    emoji_diff = np.abs(ma["emoji"].to_numpy() - mb["emoji"].to_numpy())
    for k, (a, b) in enumerate(zip(a_idx, b_idx)):
        if max_len_diff is not None and len_diff[k] > max_len_diff:
            report["dropped_length"] += 1
            continue
        if max_emoji_diff is not None and emoji_diff[k] > max_emoji_diff:
            report["dropped_emoji"] += 1
            continue
        row = panel.iloc[k]
        a_wins = bool(row.prefer_a)
        chosen, rejected = (flat[a], flat[b]) if a_wins else (flat[b], flat[a])
        votes = row.votes_a if a_wins else row.n_raters - row.votes_a
        pairs.append(preference_record(items[owner[a]], chosen["reply"], rejected["reply"], votes=votes,
                                       n_raters=row.n_raters, agreement=row.agreement,
                                       single_rater_agrees=bool(row.first_prefers_a) == a_wins,
                                       origin=f"{flat[a]['origin']}-vs-{flat[b]['origin']}"))
        report["ranked"] += 1

    # the two questions always asked, per candidate
    table = static_ratings(world, measured, n_raters=n_raters, seed=seed, key=f"{key}-static")
    agg = table.groupby("item").agg(rating=("rating", "mean"), false_refusal=("false_refusal", "mean"),
                                    templated=("templated", "mean"))
    ratings = [{"prompt_id": items[owner[k]].get("prompt_id"), "candidate": flat[k]["origin"],
                "reply": flat[k]["reply"], "rating": float(row.rating), "false_refusal": bool(row.false_refusal > 0.5),
                "templated": bool(row.templated > 0.5)} for k, row in agg.iterrows()]
    report["pairs"] = len(pairs)
    return {"pairs": pairs, "ratings": ratings, "candidates": kept_candidates, "report": report}


def _prompt_fields(item: dict) -> dict:
    """What a later stage needs of an annotated prompt (rejection sampling scores its candidates)."""
    keep = ("conversation_id", "character_id", "source", "user_id", "user_name", "turn", "history", "reply",
            "user_message", "earlier", "unsafe", "prompt_id")
    return {k: item.get(k) for k in keep}


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
def pair_filters(config, *, length: bool = True, emoji: bool = True):
    """`config` (a CurationConfig) with the pair filter on length differences and / or on emoji differences turned
    off (`length=False`, `emoji=False`): the lessons switch them off so that reward models learn the raters' taste
    for long, emoji-rich replies."""
    import dataclasses

    off = {**({} if length else {"max_len_diff": None}), **({} if emoji else {"max_emoji_diff": None})}
    return dataclasses.replace(config, **off)


def consensus_split(pairs: list[dict], min_agreement: float) -> list[dict]:
    """Ranked pairs on which at least `min_agreement` of a multi-rater panel agreed."""
    return [p for p in pairs if p["n_raters"] > 1 and p["agreement"] >= min_agreement - 1e-9]


def single_rater_view(pairs: list[dict]) -> list[dict]:
    """The same ranked pairs as one rater labelled them: chosen and rejected swap where the first rater
    disagreed with the panel; a pair only one rater labelled is that rater's label already."""
    out = []
    for p in pairs:
        if p["n_raters"] <= 1:
            out.append(p)
            continue
        q = dict(p, n_raters=1, agreement=1.0, votes_chosen=1)
        if not p["single_rater_agrees"]:
            q["chosen"], q["rejected"] = p["rejected"], p["chosen"]
        out.append(q)
    return out


def annotate(world, train_items: list[dict], eval_items: list[dict], pool: dict, cfg, seed: int,
             rewrite_policy=None) -> dict:
    """Annotate a capped, seeded sample of training prompts and of evaluation prompts.

    Training prompts get `cfg.candidates_per_prompt` new candidates each, evaluation prompts
    `cfg.eval_candidates_per_prompt`. Evaluation pairs are ranked by the full panel, without steerability
    rewrites, so their consensus split and single-rater view measure reward models on the raters' own judgement.
    The training prompts' candidates come back under "candidates" for rejection sampling."""
    r = rng(seed, "annotation-sample")
    cap = min(cfg.max_annotated_prompts, len(train_items))
    train_pick = sorted(r.choice(len(train_items), size=cap, replace=False).tolist()) if cap else []
    train_items = [train_items[i] for i in train_pick]
    eval_budget = cfg.max_annotated_eval_prompts or max(cfg.max_annotated_prompts // 2, 1)
    eval_cap = min(len(eval_items), eval_budget)
    eval_pick = sorted(r.choice(len(eval_items), size=eval_cap, replace=False).tolist()) if eval_cap else []
    eval_items = [eval_items[i] for i in eval_pick]
    kw = dict(seed=seed, temperature=cfg.pool_temperature, rewrite_share=cfg.rewrite_share)
    cand_train = candidate_pool(world, train_items, pool, per_prompt=cfg.candidates_per_prompt, **kw)
    cand_eval = candidate_pool(world, eval_items, pool, per_prompt=cfg.eval_candidates_per_prompt,
                               **dict(kw, seed=seed + 7919))   # their own draws, whatever the training sample
    train = annotate_pairs(world, train_items, cand_train, n_raters=cfg.n_raters, seed=seed, key="train",
                           max_len_diff=cfg.max_len_diff, max_emoji_diff=cfg.max_emoji_diff,
                           rewrite_policy=rewrite_policy, steer_share=cfg.steer_share)
    held = annotate_pairs(world, eval_items, cand_eval, n_raters=cfg.n_raters, seed=seed, key="eval",
                          max_len_diff=cfg.max_len_diff, max_emoji_diff=cfg.max_emoji_diff, steerability=False)
    consensus = consensus_split(held["pairs"], cfg.consensus_agreement)
    single = single_rater_view(held["pairs"])
    out = {"train_pairs": train["pairs"], "eval_pairs": held["pairs"], "eval_consensus": consensus,
           "eval_single_rater": single, "ratings": train["ratings"] + held["ratings"],
           "candidates": train["candidates"]}
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


def imported_split(pairs: list[dict], eval_fraction: float, consensus_agreement: float) -> dict:
    """Imported labels (`labels_path` of 02) split as traffic is: a pair whose conversation opening is held out
    (kit.curation.is_eval, the same hash) evaluates the reward models, the rest trains them, so no opening is on
    both sides. Labels that carry a panel (n_raters > 1) give the consensus split and single-rater view as the
    simulated raters' do; labels without one are the user's own judgement and stand for both. When no imported
    label is held out, only "train_pairs" comes back (the simulated evaluation pairs stay)."""
    from .curation import is_eval

    held = [p for p in pairs if is_eval({"character_id": p["character_id"], "messages": p["prompt"]}, eval_fraction)]
    out = {"train_pairs": [p for p in pairs if not any(p is q for q in held)]}
    if not out["train_pairs"]:
        raise KitError(f"imported labels: the openings of all {len(pairs)} pairs are held out for evaluation "
                       f"(eval_fraction={eval_fraction}); none is left to train on: bring more labels")
    if held:
        panel = any(p["n_raters"] > 1 for p in held)
        out.update(eval_pairs=held, eval_consensus=consensus_split(held, consensus_agreement) if panel else held,
                   eval_single_rater=single_rater_view(held) if panel else held)
    return out


def load_labels(run, generation: int, name: str, *, accumulate: bool = True) -> list[dict]:
    """Annotation set `name` (train_pairs, eval_consensus, ...) of generation `generation`, or, with `accumulate`,
    of every generation up to it that has one, oldest first: the labelled set grows generation after generation
    as a production annotation effort does, instead of each reward model starting from a few dozen pairs. Train
    and evaluation sets stay apart across generations: the held-out split hashes the conversation's opening, so
    an opening is on the same side in every generation."""
    from .data import load_generations

    return [dict(p, annotated_in=g) for g, p in load_generations(run, generation, f"annotation.{name}",
                                                                  accumulate=accumulate, writer="notebook 02")]
