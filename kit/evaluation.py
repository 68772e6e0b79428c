"""Offline evaluation and the gate (step 6 of the method): policies compared on the same held-out prompts; and
the promotion decision that follows the A/B test (`decide`, step 7 of the method).

Each policy replies to the same prompts with the same sampling seed; the replies are measured by rule
(instruction following, violations, style) and scored by the reward. Differences come with paired 95 %
bootstrap intervals, resampled over prompts.
"""
from __future__ import annotations

import numpy as np

from .errors import KitError
from .features import feature_table
from .seeding import rng


def steerability_rates(cards: dict, items: list[dict], replies: list[str]) -> dict:
    """instruction_following_rate: share of (reply, instruction) checks passed; violation_rate: share of replies
    breaking at least one of their card's instructions."""
    broken = [cards[it["character_id"]].violations(r, it.get("user_name")) for it, r in zip(items, replies)]
    n_inst = [len(cards[it["character_id"]].instructions) for it in items]
    return {"replies": len(replies),
            "instruction_following_rate": 1 - sum(map(len, broken)) / max(1, sum(n_inst)),
            "violation_rate": float(np.mean([bool(b) for b in broken])) if broken else float("nan")}


def steerability_by_source(cards: dict, records: list[dict]) -> dict:
    """Instruction following and violation rates of the replies in `records`, overall and per source.

    instruction_following_rate: share of (reply, instruction) checks that pass;
    violation_rate: share of replies that break at least one of their card's instructions.
    """
    from .world.traffic import turns

    items = turns(records)
    out = {}
    for source in ("all", "user", "internal"):
        chosen = [it for it in items if source == "all" or it["source"] == source]
        if not chosen:
            continue
        out[source] = steerability_rates(cards, chosen, [it["reply"] for it in chosen])
    by_type: dict[str, list[bool]] = {}
    for it in items:
        broken = set(cards[it["character_id"]].violations(it["reply"], it.get("user_name")))
        for inst in cards[it["character_id"]].instructions:
            by_type.setdefault(inst["type"], []).append(inst["type"] not in broken)
    out["following_by_type"] = {k: float(np.mean(v)) for k, v in sorted(by_type.items())}
    return out


def per_reply(cards: dict, items: list[dict], replies: list[str]):
    """One row per reply: following share, violated, words, emoji and the other style features."""
    table = feature_table(replies)
    table["following"] = [cards[it["character_id"]].following_score(r, it.get("user_name"))
                          for it, r in zip(items, replies)]
    table["violated"] = [bool(cards[it["character_id"]].violations(r, it.get("user_name")))
                         for it, r in zip(items, replies)]
    return table


def paired_bootstrap(a: np.ndarray, b: np.ndarray, seed: int, n_boot: int = 2000) -> dict:
    """Mean of b - a over prompts, with a 95 % bootstrap interval (prompts resampled)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    if len(d) == 0:
        return {"diff": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    r = rng(seed, "paired-bootstrap")
    idx = r.integers(0, len(d), size=(n_boot, len(d)))
    boots = d[idx].mean(axis=1)
    return {"diff": float(d.mean()), "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "n": int(len(d))}


def steerability_change(cards: dict, items: list[dict], before: list[str], after: list[str], *, seed: int,
                        n_boot: int = 2000) -> dict:
    """Instruction following and violation rate of `before` and `after` (two policies' replies to the same
    `items`), and after - before with a paired 95 % bootstrap interval (prompts resampled, both policies' replies
    to a prompt kept together). The rates are `steerability_rates`' (following: the share of all checks passed),
    so the interval is for the rates the gate shows."""
    if not items or not len(before) == len(after) == len(items):
        raise KitError(f"steerability_change: {len(items)} prompts, {len(before)} and {len(after)} replies: expected "
                       f"the same number, at least one")

    def checks(replies):
        broken = [cards[it["character_id"]].violations(r, it.get("user_name")) for it, r in zip(items, replies)]
        return np.array([len(b) for b in broken], float), np.array([bool(b) for b in broken], float)

    n_inst = np.array([len(cards[it["character_id"]].instructions) for it in items], float)
    (broken_a, viol_a), (broken_b, viol_b) = checks(before), checks(after)
    idx = rng(seed, "steerability-change").integers(0, len(items), size=(n_boot, len(items)))
    every, out = np.arange(len(items)), {}
    for name, stat, a, b in (("instruction_following_rate",
                              lambda i, broken: 1 - broken[i].sum(-1) / np.maximum(1, n_inst[i].sum(-1)),
                              broken_a, broken_b),
                             ("violation_rate", lambda i, viol: viol[i].mean(-1), viol_a, viol_b)):
        rate_a, rate_b = float(stat(every, a)), float(stat(every, b))
        boots = stat(idx, b) - stat(idx, a)
        out[name] = {"before": rate_a, "after": rate_b, "diff": rate_b - rate_a, "n": len(items),
                     "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]}
    return out


def held_out_items(run, generation: int) -> list[dict]:
    """The evaluation prompts every generation's held-out checks draw from: the held-out split of the earliest
    generation curated so far, plus the held-out side of the world tour's traffic (notebook 01, the base model's
    day before the flywheel starts), so that every generation is measured on the same prompts (like a benchmark)
    and a policy's replies to them are generated once (Run.reply_cache). Never trained on: the split hashes the
    conversation's opening, so no opening is on both sides in any generation."""
    from .curation import prompt_key
    from .data import load_dataset_dir

    for g in range(generation + 1):
        path = run.artifact(g, "curation.eval_prompts", create=False)
        if path.exists():
            items = load_dataset_dir(path).to_list()
            break
    else:
        raise KitError(f"{run.root}: no generation up to {generation} has curated evaluation prompts "
                       f"(run notebook 02)")
    tour = run.artifact(0, "world.eval_prompts", create=False)
    if tour.exists():
        seen = {prompt_key(it) for it in items}
        for it in load_dataset_dir(tour).to_list():
            if prompt_key(it) not in seen:
                seen.add(prompt_key(it))
                items.append(it)
    return items


def held_out(eval_items: list[dict], n: int, seed: int) -> list[dict]:
    """The held-out prompts every before/after check uses (notebooks 04, 05 and 06): `n` at most, half user and
    half internal traffic where there are enough of each (the rest from the other source). The same arguments
    give the same prompts, so the checks of one generation compare policies on one set."""
    from .seeding import sample_in_order

    by_source = {s: [it for it in eval_items if it.get("source") == s] for s in ("user", "internal")}
    other = [it for it in eval_items if it.get("source") not in by_source]
    half = n // 2
    picked = (sample_in_order(by_source["user"], max(half, n - len(by_source["internal"])), seed, "pick-prompts",
                              "eval-user")
              + sample_in_order(by_source["internal"], max(half, n - len(by_source["user"])), seed, "pick-prompts",
                                "eval-internal"))
    return picked + sample_in_order(other, n - len(picked), seed, "pick-prompts", "eval-other") \
        if len(picked) < n else picked


def held_out_check(run, generation: int, cards: dict, world, adapters: dict, *, baseline: str, reward_fn,
                   model_name: str, gen_config, n: int, seed: int) -> dict:
    """The before/after check of notebooks 04 and 05: the policies of `adapters` (name -> adapter folder, None for
    the base model) reply to the same `n` held-out prompts (held_out_items, held_out) with the same sampling seed,
    each policy's replies generated once in a run (Run.reply_cache); then `compare` against `baseline`, with
    `reward_fn` and the world's hidden utility."""
    from .sampling import Policy

    held = held_out(held_out_items(run, generation), n, seed)
    policies = {name: Policy.load(model_name, adapter, name=name, seed=seed, gen=gen_config)
                for name, adapter in adapters.items()}
    replies = generate_for(policies, cards, held, seed=seed, cache=run.reply_cache())
    return compare(cards, held, replies, reward_fn=reward_fn, baseline=baseline, seed=seed, world=world)


def check_table(check: dict):
    """A `compare` result as a table: a column per policy, its rates and means (the paired differences left out:
    they are check[name]["vs_<baseline>"])."""
    import pandas as pd

    return pd.DataFrame({k: {m: v for m, v in d.items() if not m.startswith("vs_")} for k, d in check.items()})


def generate_for(policies: dict, cards: dict, items: list[dict], *, seed: int, temperature: float | None = None,
                 cache=None, read_only: bool = False) -> dict[str, list[str]]:
    """Each policy's replies to the same prompts with the same sampling seed (whatever the policies' names).

    `cache`: a folder (`Run.reply_cache()`). Replies are stored there under a digest of the policy's weights
    (`Policy.source`), the prompts and every sampling setting, and read back instead of generated when all of
    them match: the same weights on the same prompts with the same seed give the same replies anyway, so each
    policy's replies to the held-out prompts (notebooks 04, 05 and 06) and to the A/B pool (07) are generated
    once in a run. `read_only`: replies must come from `cache`; a policy whose replies are not there is a KitError
    (nothing is generated or written)."""
    import hashlib
    import json
    from pathlib import Path

    from .paths import read_json, write_json
    from .seeding import derive

    prompts = [cards[it["character_id"]].prompt(it["history"], it.get("user_name")) for it in items]
    out = {}
    for name, p in policies.items():
        settings = dict(max_new_tokens=p.max_new_tokens, temperature=p.temperature if temperature is None else
                        temperature, top_p=p.top_p, batch_size=p.batch_size, seed=derive(seed, "policy-eval"))
        path = None
        if cache is not None and getattr(p, "source", None):
            key = hashlib.sha256(json.dumps([p.source, prompts, settings], sort_keys=True).encode()).hexdigest()[:24]
            path = Path(cache) / f"{key}.json"
            if path.exists():
                stored = read_json(path)
                if len(stored.get("replies", [])) == len(prompts):
                    out[name] = stored["replies"]
                    print(f"eval: {name}: {len(prompts)} replies read back from {path.name} (same weights, prompts "
                          f"and seed)")
                    continue
        if read_only:
            raise KitError(f"{name}: no stored replies of these weights to these {len(prompts)} prompts with these "
                           f"settings in {cache}")
        out[name] = p.sample(prompts, desc=f"eval: {name}", **settings)
        if path is not None:
            write_json(path, {"source": p.source, "settings": settings, "replies": out[name]})
    return out


def hidden_utility(world, items: list[dict], replies: list[str]) -> np.ndarray:
    """The world's hidden utility of each reply for the average user: a measurement for the learner, shown beside
    what the proxies say; no trainer, sampler or reward model reads it."""
    earlier = [[m["content"] for m in it.get("history", []) if m["role"] == "assistant"] for it in items]
    measured = world.measure([dict(it, reply=r, user_message=it.get("user_message") or _last_user(it), earlier=e)
                              for it, r, e in zip(items, replies, earlier)])
    return world.mean_user_utility(measured)


def compare(cards: dict, items: list[dict], replies: dict[str, list[str]], *, reward_fn=None, baseline: str,
            seed: int = 0, world=None) -> dict:
    """Per policy: steerability rates, mean reward and mean length (and, given the synthetic `world`, the mean
    hidden utility); against `baseline`: paired differences in following share, reward, words (and utility) with
    95 % intervals."""
    out, tables, scores = {}, {}, {}
    for name, reps in replies.items():
        tables[name] = per_reply(cards, items, reps)
        out[name] = steerability_rates(cards, items, reps)
        out[name]["mean_words"] = float(tables[name]["words"].mean())
        out[name]["emoji_rate"] = float((tables[name]["emoji"] > 0).mean())
        scores[name] = {"following": tables[name]["following"].to_numpy(float),
                        "words": tables[name]["words"].to_numpy(float)}
        if reward_fn is not None:
            scores[name]["reward"] = np.asarray(reward_fn(items, reps), dtype=float)
            out[name]["mean_reward"] = float(scores[name]["reward"].mean())
        if world is not None:
            scores[name]["hidden_utility"] = hidden_utility(world, items, reps)
            out[name]["hidden_utility"] = float(scores[name]["hidden_utility"].mean())
    for name in replies:
        if name != baseline:
            out[name]["vs_" + baseline] = {k: paired_bootstrap(scores[baseline][k], v, seed)
                                           for k, v in scores[name].items()}
    return out


# ---------------------------------------------------------------------------------------------- production metrics
PRODUCTION_METRICS = ("false_refusal", "preachy", "positive_sentiment", "cooperativeness", "instruction_violation",
                      "wall_of_text", "emoji_rate", "list_rate", "mean_length")
COOPERATIVE_RELEVANCE = 0.25   # MiniLM cosine of message and reply at or above which a reply engages the message


def production_metrics(world, items: list[dict], replies: list[str]) -> dict:
    """The paper's production metrics, by rule, over replies to `items`:

    false_refusal: refusals of requests that were not unsafe, per non-unsafe prompt; preachy: lecturing tone;
    positive_sentiment: lexicon sentiment > 0.2; cooperativeness: neither a refusal nor off the point (MiniLM
    relevance to the user's message >= 0.25), per non-unsafe prompt; instruction_violation: breaks at least one
    of the card's rules; wall_of_text: >= 120 words in one block; emoji_rate, list_rate: share of replies with any;
    mean_length: words."""
    if not replies:
        return {k: float("nan") for k in PRODUCTION_METRICS}
    m = world.measure([dict(it, reply=r, user_message=it.get("user_message") or _last_user(it)) for it, r in
                       zip(items, replies)])
    safe = ~m["unsafe_prompt"].astype(bool)
    refusal = m["refusal"].astype(bool)
    coop = (~refusal) & (m["relevance"] >= COOPERATIVE_RELEVANCE)
    mean = lambda s: float(s.mean()) if len(s) else float("nan")  # noqa: E731
    return {"false_refusal": mean(refusal[safe]), "preachy": mean(m["preachy"].astype(float)),
            "positive_sentiment": mean(m["positive"].astype(float)), "cooperativeness": mean(coop[safe]),
            "instruction_violation": mean((m["violations"] > 0).astype(float)),
            "wall_of_text": mean(m["wall_of_text"].astype(float)), "emoji_rate": mean((m["emoji"] > 0).astype(float)),
            "list_rate": mean(m["has_list"].astype(float)), "mean_length": mean(m["words"].astype(float))}


def _last_user(item: dict) -> str:
    users = [m["content"] for m in item.get("history", []) if m["role"] == "user"]
    return users[-1] if users else ""


def summarise(world, cards: dict, items: list[dict], replies: dict[str, list[str]]) -> dict:
    """Per policy (notebook 06): its steerability rates, its production metrics and the mean hidden utility of its
    replies to `items`."""
    return {name: dict(steerability_rates(cards, items, reps), production=production_metrics(world, items, reps),
                       hidden_utility=float(hidden_utility(world, items, reps).mean()))
            for name, reps in replies.items()}


def summary_table(summary: dict):
    """A `summarise` result as a table: a column per policy; the production metrics, instruction following,
    violation rate and hidden utility as rows."""
    import pandas as pd

    return pd.DataFrame({k: dict(d["production"], **{m: d[m] for m in ("instruction_following_rate",
                                                                         "violation_rate")},
                                 hidden_utility=d["hidden_utility"]) for k, d in summary.items()})


def offline_metrics(summary: dict, wins: dict, judge_consistency: float, verdict: dict, vs_base: dict,
                    items: list[dict], *, candidate_adapter, deployed_adapter, config) -> dict:
    """gen_<g>/eval/metrics.json (notebook 06): the candidate's rates at the top, each policy's summary (the base
    model's is the deployed policy's while that is the base model), the win rates, the gate's verdict, the
    candidate against the base model (`compare`'s paired differences), the prompts per source and the config."""
    return {"instruction_following_rate": summary["candidate"]["instruction_following_rate"],
            "violation_rate": summary["candidate"]["violation_rate"],
            "deployed": summary["deployed"], "candidate": summary["candidate"],
            "base": summary.get("base", summary["deployed"]),
            "win_rate": wins, "judge_order_consistency": judge_consistency, "gate": verdict,
            "candidate_vs_base": vs_base["candidate"]["vs_base"],
            "candidate_adapter": str(candidate_adapter), "deployed_adapter": deployed_adapter,
            "prompts": {s: sum(it["source"] == s for it in items) for s in ("user", "internal")},
            "config": config.__dict__}


# ---------------------------------------------------------------------------------------------- win rates
def win_rates(items: list[dict], candidate_reward, deployed_reward, judge_prob=None) -> dict:
    """Candidate vs deployed, per source (user, internal) and overall. Pointwise: the candidate's reply scores
    higher (a tie counts half); pairwise: the judge's p(candidate better) > 0.5 (0.5 counts half)."""
    cand, dep = np.asarray(candidate_reward, float), np.asarray(deployed_reward, float)
    sources = np.array([it.get("source", "user") for it in items])
    point = np.where(cand > dep, 1.0, np.where(cand == dep, 0.5, 0.0))
    pair = None if judge_prob is None else np.where(np.asarray(judge_prob) > 0.5, 1.0,
                                                    np.where(np.asarray(judge_prob) == 0.5, 0.5, 0.0))
    out = {}
    for name, wins in (("pointwise", point), ("pairwise", pair)):
        if wins is None:
            continue
        out[name] = {}
        for src in ("user", "internal", "all"):
            mask = np.ones(len(wins), bool) if src == "all" else sources == src
            out[name][src] = float(wins[mask].mean()) if mask.any() else None
            out[name][f"n_{src}"] = int(mask.sum())
    return out


# ---------------------------------------------------------------------------------------------- the gate
def _wilson(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    from .stats import wilson_ci

    lo, hi = wilson_ci(rate * n, n, z) if n else (float("nan"), float("nan"))
    return lo, hi


def rate_difference(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float, float]:
    """p1 - p2 with Newcombe's 95 % interval (from the two Wilson intervals): (difference, low, high)."""
    l1, u1 = _wilson(p1, n1)
    l2, u2 = _wilson(p2, n2)
    d = p1 - p2
    return d, d - ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5, d + ((u1 - p1) ** 2 + (p2 - l2) ** 2) ** 0.5


GATE_SETTINGS = ("max_win_rate", "min_win_rate", "max_divergence", "following_tolerance", "violation_tolerance")


def gate_settings(cfg) -> dict:
    """The gate's settings from an EvalConfig (or anything with those fields), as `gate`'s keyword arguments."""
    return {name: getattr(cfg, name) for name in GATE_SETTINGS}


def gate(change: dict, wins: dict, *, max_win_rate: float = 0.65, min_win_rate: float = 0.5,
         max_divergence: float = 0.15, following_tolerance: float = 0.02, violation_tolerance: float = 0.03) -> dict:
    """The deployment gate, with the paper's overfit guard, read with the uncertainty of the prompts it has.

    The paper's rules (keep the reward-model win rate under 65 %; treat a large user/internal divergence as a red
    flag) were set on thousands of prompts. On a few dozen, a win rate of 12 prompts carries a 95 % interval about
    50 points wide, and two such rates differ by 15 points one time in two by chance alone: a gate reading point
    estimates would block good candidates at random. So it blocks when:

    * the user win rate is above `max_win_rate` even at the lower end of its 95 % Wilson interval (a proxy won too
      easily: overfitting to the reward model), or below `min_win_rate` even at its upper end (the candidate is not
      better by its own reward);
    * user and internal win rates diverge by more than `max_divergence` and the divergence is significant (its
      95 % Newcombe interval excludes 0: the gain does not generalise);
    * instruction following falls, or the violation rate rises, beyond the tolerances and significantly (the
      paired 95 % interval of the change, `change` from `steerability_change(..., deployed, candidate)`, is
      entirely on the worse side of zero). On 32 prompts one reply in 32 moves following by about 2 points, the
      tolerance: a fall that small is within chance.

    A point estimate outside the window that its interval does not confirm is reported as a warning. With many
    prompts the intervals are narrow and the rules are the paper's. Returns {"promote": bool, "reasons": [...]};
    every check adds a reason, passed or not."""
    reasons, ok = [], True
    pw = wins.get("pointwise", {})
    user, internal = pw.get("user"), pw.get("internal")
    rate, n = (user, pw.get("n_user", 0)) if user is not None else (pw.get("all"), pw.get("n_all", 0))
    if rate is None:
        ok = False
        reasons.append("BLOCK: no win rate")
    else:
        lo, hi = _wilson(rate, n)
        shown = f"win rate {rate:.0%} [{lo:.0%}, {hi:.0%}] (n={n})"
        if lo > max_win_rate:
            ok = False
            reasons.append(f"BLOCK: {shown} > {max_win_rate:.0%}: overfitting to the reward model suspected")
        elif hi < min_win_rate:
            ok = False
            reasons.append(f"BLOCK: {shown} < {min_win_rate:.0%}: not better by its own reward")
        elif not min_win_rate <= rate <= max_win_rate:
            reasons.append(f"warn: {shown} is outside [{min_win_rate:.0%}, {max_win_rate:.0%}], but not beyond its "
                           f"95 % interval: too few prompts to tell")
        else:
            reasons.append(f"pass: {shown} within [{min_win_rate:.0%}, {max_win_rate:.0%}]")
    if user is not None and internal is not None:
        gap, lo, hi = rate_difference(user, pw.get("n_user", 0), internal, pw.get("n_internal", 0))
        shown = f"user {user:.1%} vs internal {internal:.1%}: gap {gap:+.1%} [{lo:+.1%}, {hi:+.1%}]"
        if abs(gap) > max_divergence and (lo > 0 or hi < 0):
            ok = False
            reasons.append(f"BLOCK: {shown}, beyond {max_divergence:.0%} and significant: the gain does not generalise")
        elif abs(gap) > max_divergence:
            reasons.append(f"warn: {shown}, beyond {max_divergence:.0%} but within chance at these prompt counts")
        else:
            reasons.append(f"pass: {shown}")
    elif user is not None or internal is not None:
        missing = "internal" if internal is None else "user"
        reasons.append(f"not checked: no {missing} prompts among the held-out ones, so the user/internal divergence "
                       f"guard could not run")
    for name, label, worse, tolerance in (("instruction_following_rate", "instruction following", -1,
                                           following_tolerance),
                                          ("violation_rate", "violation rate", +1, violation_tolerance)):
        c = change[name]
        lo, hi = c["ci95"]
        d, lo_pts, hi_pts = (round(x * 100, 1) + 0.0 for x in (c["diff"], lo, hi))   # + 0.0: no "-0.0"
        shown = (f"{label} {c['before']:.1%} -> {c['after']:.1%}: {d:+.1f} points [{lo_pts:+.1f}, {hi_pts:+.1f}] "
                 f"(n={c['n']})")
        beyond = worse * c["diff"] > tolerance
        if beyond and (hi < 0 if worse < 0 else lo > 0):
            ok = False
            reasons.append(f"BLOCK: {shown}, worse by more than {tolerance * 100:g} points and significant")
        elif beyond:
            reasons.append(f"warn: {shown}, worse by more than {tolerance * 100:g} points but within chance at these "
                           f"prompt counts")
        else:
            reasons.append(f"pass: {shown}")
    return {"promote": ok, "reasons": reasons}


def decide(gate: dict, ab: dict) -> dict:
    """The promotion decision, after the A/B test (notebook 07): promote only when the offline gate passed (`gate`,
    above), depth rose in the A/B test (`ab`, kit.abtest.analyse), and neither breadth nor depth fell significantly
    (its 95 % interval entirely below zero). Every reason is listed."""
    reasons, ok = [], bool(gate.get("promote"))
    reasons.append(("pass" if ok else "BLOCK") + ": offline gate " + ("passed" if ok else "blocked"))
    depth, breadth = ab["depth"], ab["breadth"]
    if depth["lift"] > 0:
        reasons.append(f"pass: depth {depth['lift']:+.1%} [{depth['ci95'][0]:+.1%}, {depth['ci95'][1]:+.1%}]")
    else:
        ok = False
        reasons.append(f"BLOCK: depth {depth['lift']:+.1%} [{depth['ci95'][0]:+.1%}, {depth['ci95'][1]:+.1%}]")
    for name, m in (("breadth", breadth), ("depth", depth)):
        if m["ci95"][1] < 0:
            ok = False
            reasons.append(f"BLOCK: {name} fell significantly ({m['lift']:+.1%})")
    if ab.get("srm_p_value", 1.0) < 0.001:
        ok = False
        reasons.append(f"BLOCK: sample-ratio mismatch (p = {ab['srm_p_value']:.2g}); the test is not trustworthy")
    return {"promote": ok, "reasons": reasons}
