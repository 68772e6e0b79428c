"""The privacy filter on its benchmark: recall and precision per kind of personal data, and what each optional rule
costs and catches.

    python bench/privacy.py [--seeds 0 1 2 3]

The benchmark (`kit.privacy.pii_benchmark`) plants personal data in sentences written for it, not taken from the
world's prompt bank, and adds look-alikes (versions, section numbers, Luhn-failing numbers, never-issued SSNs,
links without secrets, street words, ...). Per kind, recall counts planted values redacted with their own type;
precision counts those over every finding of that type. Each rule of `kit.privacy.OPTIONAL_RULES` is then left
out in turn: the planted values it alone catches and the look-alikes it alone flags (or, for an exclusion rule,
spares) are the evidence for keeping it. Prints a table and writes bench/results/privacy.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = ap.parse_args()

    from kit.privacy import KINDS, pii_benchmark, pii_scores, rule_costs

    start = time.perf_counter()
    runs = {seed: pii_scores(*pii_benchmark(seed)) for seed in args.seeds}
    per_kind = {}
    for kind in KINDS:
        tot = {k: sum(r["per_kind"][kind][k] for r in runs.values())
               for k in ("planted", "caught", "false_positives", "overreach")}
        tot["recall"] = tot["caught"] / tot["planted"]
        tot["precision"] = tot["caught"] / max(1, tot["caught"] + tot["false_positives"])
        tot["recall_min_seed"] = min(r["per_kind"][kind]["recall"] for r in runs.values())
        tot["precision_min_seed"] = min(r["per_kind"][kind]["precision"] for r in runs.values())
        per_kind[kind] = tot
    planted = sum(r["planted"] for r in runs.values())
    looks = sum(r["lookalikes"] for r in runs.values())
    caught = sum(v["caught"] for v in per_kind.values())
    false_pos = sum(v["false_positives"] for v in per_kind.values())
    rules = rule_costs(args.seeds)
    result = {"seeds": args.seeds, "planted": planted, "lookalikes": looks, "recall": caught / planted,
              "precision": caught / max(1, caught + false_pos), "per_kind": per_kind, "rules": rules,
              "missed": [m for r in runs.values() for m in r["missed"]][:20],
              "flagged_lookalikes": [m for r in runs.values() for m in r["flagged_lookalikes"]][:20],
              "seconds": round(time.perf_counter() - start, 1)}
    md = markdown(result)
    print(md)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "privacy.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "privacy.md").write_text(md, encoding="utf-8")


def markdown(result: dict) -> str:
    seeds = ", ".join(map(str, result["seeds"]))
    lines = [f"Privacy benchmark, seeds {seeds}: {result['planted']} planted items, {result['lookalikes']} "
             f"look-alikes (`python bench/privacy.py`)", "",
             f"Overall recall {result['recall']:.1%}, precision {result['precision']:.1%}.", "",
             "| kind | planted | recall | lowest seed | precision | lowest seed | false positives | overreach |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, v in result["per_kind"].items():
        lines.append(f"| {kind} | {v['planted']} | {v['recall']:.1%} | {v['recall_min_seed']:.1%} | "
                     f"{v['precision']:.1%} | {v['precision_min_seed']:.1%} | {v['false_positives']} | "
                     f"{v['overreach']} |")
    lines += ["", "Overreach: caught values whose redaction also took a word next to them.", "",
              "Each optional rule left out in turn (all seeds together):", "",
              "| rule | planted values caught with / without | false positives with / without | what it does |",
              "| --- | ---: | ---: | --- |"]
    for rule, v in result["rules"].items():
        lines.append(f"| `{rule}` | {v['caught_with']} / {v['caught_without']} | {v['false_positives_with']} / "
                     f"{v['false_positives_without']} | {v['what']} |")
    if result["missed"]:
        lines += ["", "Missed:", ""] + [f"- {m}" for m in result["missed"]]
    if result["flagged_lookalikes"]:
        lines += ["", "Look-alikes flagged:", ""] + [f"- {m}" for m in result["flagged_lookalikes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
