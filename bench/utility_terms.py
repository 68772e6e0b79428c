"""Which terms of the hidden utility each stage moved: the base model, SFT, the policy RL started from and RL, on the
held-out prompts of one generation of a finished run; and which of the cards' rules each stage's replies keep.

The replies are the ones notebooks 04 and 05 generated for their held-out checks (read back from the run's reply
cache; nothing is written to the run). Each term of the world's utility for the average user (kit.world.users:
length, emoji, instructions, empty replies, ...) is averaged over the replies, so a learner can see where a change
of the total comes from; per instruction type, the share of held-out replies whose card has that rule and keep it.
A measurement only: no trainer reads it. Results go to bench/results/<name>.{json,md}.

    python bench/utility_terms.py --run-dir runs/cpu-seed1 --generation 0 --name utility_terms_seed1
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_variants import open_run, save   # noqa: E402  (bench/, beside this script)

STAGES = (("base", None), ("sft", "policy.sft.adapter"), ("start", "policy.dpo.adapter"), ("rl", "policy.rl.adapter"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--generation", type=int, required=True)
    ap.add_argument("--name", default="utility_terms", help="file name under bench/results/")
    args = ap.parse_args()

    import numpy as np

    from kit import evaluation
    from kit.config import PolicyConfig, stage_config
    from kit.features import words
    from kit.sampling import Policy
    from kit.world.users import utility_terms

    r = open_run(args.run_dir)
    run, g = r.run, args.generation
    n = stage_config(PolicyConfig, r.profile).policy_eval_prompts
    held = evaluation.held_out(evaluation.held_out_items(run, g), n, r.seed)
    policies = {}
    for name, key in STAGES:
        adapter = None if key is None else Path(run.artifact(g, key, create=False))
        if adapter is None or (adapter / "adapter_config.json").exists():
            policies[name] = Policy.load(r.model, adapter, name=name, seed=r.seed, gen=r.gen_cfg)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "replies"
        shutil.copytree(run.reply_cache(), cache)       # the held-out checks' replies; nothing written to the run
        replies = evaluation.generate_for(policies, r.cards, held, seed=r.seed, cache=cache)
    earlier = [[m["content"] for m in it.get("history", []) if m["role"] == "assistant"] for it in held]
    rows = {}
    for name, reps in replies.items():
        measured = r.world.measure([dict(it, reply=rep, user_message=it.get("user_message") or
                                         evaluation._last_user(it), earlier=e)
                                    for it, rep, e in zip(held, reps, earlier)])
        terms = utility_terms(measured, r.world.mean_prefs(len(measured)), r.world.params)
        rows[name] = {"words": float(np.mean([len(words(x)) for x in reps])),
                      "under_2_words": int(sum(len(words(x)) < 2 for x in reps)),
                      "utility": float(np.sum([np.mean(v) for v in terms.values()])),
                      "terms": {k: float(np.mean(v)) for k, v in terms.items() if k != "base"},
                      "rules": rules_kept(r.cards, held, reps)}
    result = {"run_dir": args.run_dir, "generation": g, "profile": r.profile, "seed": r.seed, "prompts": len(held),
              "policies": rows, "command": "python " + " ".join(["bench/utility_terms.py"] + sys.argv[1:])}
    save(result, args.name, markdown(result))


def rules_kept(cards: dict, items: list[dict], replies: list[str]) -> dict:
    """Per instruction type: how many held-out replies answer a card with that rule, and the share that keep it."""
    from collections import Counter

    held, broken = Counter(), Counter()
    for it, reply in zip(items, replies):
        card = cards[it["character_id"]]
        held.update(inst["type"] for inst in card.instructions)
        broken.update(card.violations(reply, it.get("user_name")))
    return {t: {"replies": n, "kept": 1 - broken[t] / n} for t, n in sorted(held.items())}


def markdown(result: dict) -> str:
    rows = {n: result["policies"][n] for n, _ in STAGES if n in result["policies"]}   # method order (JSON sorts)
    terms = list(next(iter(rows.values()))["terms"])
    head = (f"Terms of the hidden utility (the average user) on `{result['run_dir']}` generation "
            f"{result['generation']} (profile {result['profile']}, seed {result['seed']}), {result['prompts']} "
            "held-out prompts: the replies of notebooks 04 and 05's held-out checks. The users' baseline "
            "engagement, the same for every reply, is left out of the terms and kept in the total.")
    lines = [head, f"Command: `{result['command']}`", "",
             "| term | " + " | ".join(rows) + " |", "| --- |" + " ---: |" * len(rows),
             "| words | " + " | ".join(f"{r['words']:.1f}" for r in rows.values()) + " |",
             "| replies under 2 words | " + " | ".join(str(r["under_2_words"]) for r in rows.values()) + " |"]
    for t in terms:
        lines.append(f"| {t} | " + " | ".join(f"{r['terms'][t]:+.3f}" for r in rows.values()) + " |")
    lines.append("| **hidden utility** | " + " | ".join(f"**{r['utility']:+.3f}**" for r in rows.values()) + " |")
    rules = next(iter(rows.values())).get("rules")
    if rules:
        lines += ["", "Share of the replies that keep each rule of their card (replies whose card has it):", "",
                  "| rule (replies) | " + " | ".join(rows) + " |", "| --- |" + " ---: |" * len(rows)]
        for t, r0 in rules.items():
            lines.append(f"| {t} ({r0['replies']}) | " + " | ".join(f"{r['rules'][t]['kept']:.0%}"
                                                                   for r in rows.values()) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
