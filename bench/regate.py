"""Today's deployment gate and promotion decision on finished runs: what `kit.evaluation.gate` and `decide` say now
about each generation, beside what the run recorded when it ran, from the replies and measurements the run stored.

Notebook 06's held-out replies of the deployed policy and the candidate are read back from each run's reply cache
(read only: nothing is written to the run), the win rates and the A/B result from the generation's metrics.json; no
reply is generated and nothing is trained. Use it when the gate's rules change, to see which decisions of
committed runs the change would have altered. A generation whose decision differs is flagged: everything after it
in that run would differ too, so only a rerun shows its effect there. Results go to bench/results/<name>.{json,md}.

    python bench/regate.py runs/cpu-seed0 runs/cpu-seed1 runs/cpu-seed2 --name regate
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_variants import open_run, save   # noqa: E402  (bench/, beside this script)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    ap.add_argument("run_dirs", nargs="+", help="finished flywheel runs (their reply caches are read)")
    ap.add_argument("--name", default="regate", help="file name under bench/results/")
    args = ap.parse_args()
    result = {"runs": [row for run_dir in args.run_dirs for row in regate(run_dir)],
              "command": "python " + " ".join(["bench/regate.py"] + sys.argv[1:])}
    save(result, args.name, markdown(result))


def regate(run_dir: str) -> list[dict]:
    """One row per generation with an offline evaluation and an A/B test: the gate and decision recorded, and
    today's on the same replies, win rates and A/B result."""
    from kit import evaluation
    from kit.config import EvalConfig
    from kit.launch import settings, stage_cfg
    from kit.sampling import Policy

    r = open_run(run_dir)
    run, rows = r.run, []
    cfg = stage_cfg(EvalConfig, settings(run), "06_offline_eval")
    for g in sorted(int(k) for k in run.manifest().get("generations", {})):
        status = run.generation_status(g)
        if not (run.metrics_path(g, "eval").exists() and run.metrics_path(g, "ab").exists()):
            continue
        recorded, ab = (json.loads(run.metrics_path(g, s).read_text()) for s in ("eval", "ab"))
        items = evaluation.held_out(evaluation.held_out_items(run, g), cfg.eval_prompts, r.seed)
        policies = {"deployed": Policy.load(r.model, run.deployed(g)["adapter"], name="deployed", seed=r.seed,
                                            gen=r.gen_cfg),
                    "candidate": Policy.load(r.model, status["candidate_adapter"], name="candidate", seed=r.seed,
                                             gen=r.gen_cfg)}
        # notebook 06's replies, read back (a policy whose replies are not stored is an error: nothing generated)
        replies = evaluation.generate_for(policies, r.cards, items, seed=r.seed, cache=run.reply_cache(),
                                          read_only=True)
        change = evaluation.steerability_change(r.cards, items, replies["deployed"], replies["candidate"],
                                                seed=r.seed)
        gate = evaluation.gate(change, recorded["win_rate"], **evaluation.gate_settings(cfg))
        rows.append({"run_dir": run_dir, "seed": r.seed, "generation": g,
                     "recorded": {"gate": recorded["gate"], "promote": ab["decision"]["promote"]},
                     "now": {"gate": gate, "promote": evaluation.decide(gate, ab)["promote"]}})
    return rows


def _blocks(gate: dict) -> str:
    reasons = [r for r in gate["reasons"] if r.startswith("BLOCK")]
    return "promote" if gate["promote"] else "; ".join(r[len("BLOCK: "):] for r in reasons)


def markdown(result: dict) -> str:
    lines = ["Each generation's offline gate and promotion decision as recorded when the run ran, and as today's "
             "`kit.evaluation.gate` and `decide` give them on the same stored replies, win rates and A/B result.",
             f"Command: `{result['command']}`", "",
             "| run | gen | gate then | gate now | promoted then | promoted now |",
             "| --- | ---: | --- | --- | --- | --- |"]
    for row in result["runs"]:
        then, now = row["recorded"], row["now"]
        flag = "" if then["promote"] == now["promote"] else " **(differs)**"
        lines.append(f"| `{row['run_dir']}` | {row['generation']} | {_blocks(then['gate'])} | {_blocks(now['gate'])} "
                     f"| {'yes' if then['promote'] else 'no'} | {'yes' if now['promote'] else 'no'}{flag} |")
    lines += ["", "Today's gate, the steerability rules of each generation:", ""]
    for row in result["runs"]:
        rules = [r for r in row["now"]["gate"]["reasons"] if "instruction following" in r or "violation rate" in r]
        lines.append(f"- `{row['run_dir']}` gen {row['generation']}: " + "; ".join(rules))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
