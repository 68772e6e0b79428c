"""The privacy filter on its benchmark: recall and precision per kind of personal data, and what each optional rule
costs and catches.

    python bench/privacy.py [--seeds 0 1 2 3] [--held-out 100 ... 131]

The benchmark (`kit.privacy.pii_benchmark`) plants personal data in sentences written for it, not taken from the
world's prompt bank, and adds look-alikes (versions, section numbers, Luhn-failing numbers, never-issued SSNs,
links without secrets, street words, ...). Per kind, recall counts planted values redacted with their own type;
precision counts those over every finding of that type. Two sets of seeds: `--seeds` are the tests' seeds, which
the rules were written against (a regression floor, not an estimate), `--held-out` were drawn only once the rules
were final (closer to an estimate, still on the benchmark's own templates). Each rule of
`kit.privacy.OPTIONAL_RULES` is then left out in turn on `--seeds`: the planted values it alone catches and the
look-alikes it alone flags (or, for an exclusion rule, spares) are the evidence for keeping it. Prints the tables
and writes bench/results/privacy.json and .md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def table(seeds: list[int]) -> dict:
    from kit.privacy import KINDS, pii_benchmark, pii_scores

    runs = [pii_scores(*pii_benchmark(seed)) for seed in seeds]
    per_kind = {}
    for kind in KINDS:
        tot = {k: sum(r["per_kind"][kind][k] for r in runs) for k in ("planted", "caught", "false_positives",
                                                                         "overreach")}
        tot["recall"] = tot["caught"] / tot["planted"]
        tot["precision"] = tot["caught"] / max(1, tot["caught"] + tot["false_positives"])
        tot["recall_min_seed"] = min(r["per_kind"][kind]["recall"] for r in runs)
        tot["precision_min_seed"] = min(r["per_kind"][kind]["precision"] for r in runs)
        per_kind[kind] = tot
    caught = sum(v["caught"] for v in per_kind.values())
    false_pos = sum(v["false_positives"] for v in per_kind.values())
    planted = sum(r["planted"] for r in runs)
    return {"seeds": seeds, "planted": planted, "sentences": sum(r["sentences"] for r in runs),
            "lookalikes": sum(r["lookalikes"] for r in runs), "recall": caught / planted,
            "precision": caught / max(1, caught + false_pos), "per_kind": per_kind,
            "missed": [m for r in runs for m in r["missed"]][:20],
            "flagged_lookalikes": [m for r in runs for m in r["flagged_lookalikes"]][:20]}


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--held-out", type=int, nargs="*", default=list(range(100, 132)))
    args = ap.parse_args()

    from kit.privacy import rule_costs

    start = time.perf_counter()
    result = {"tuned": table(args.seeds), "held_out": table(args.held_out) if args.held_out else None,
              "rules": rule_costs(args.seeds)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    md = markdown(result)
    print(md)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "privacy.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "privacy.md").write_text(md, encoding="utf-8")


def _seeds(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds))


def _table_md(t: dict, title: str) -> list[str]:
    lines = [f"**{title}**, seeds {_seeds(t['seeds'])}: {t['planted']} planted data in {t['sentences']} sentences, "
             f"{t['lookalikes']} look-alikes; recall {t['recall']:.2%}, precision {t['precision']:.2%}.", "",
             "| kind | planted | recall | lowest seed | precision | lowest seed | false positives | overreach |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, v in t["per_kind"].items():
        lines.append(f"| {kind} | {v['planted']} | {v['recall']:.2%} | {v['recall_min_seed']:.1%} | "
                     f"{v['precision']:.2%} | {v['precision_min_seed']:.1%} | {v['false_positives']} | "
                     f"{v['overreach']} |")
    if t["missed"]:
        lines += ["", "Missed:", ""] + [f"- `{m!r}`" for m in t["missed"]]
    if t["flagged_lookalikes"]:
        lines += ["", "Look-alikes flagged:", ""] + [f"- `{m!r}`" for m in t["flagged_lookalikes"]]
    return lines + [""]


def markdown(result: dict) -> str:
    lines = ["Privacy benchmark (`python bench/privacy.py`). Overreach: caught values whose redaction also took a "
             "word next to them.", ""]
    lines += _table_md(result["tuned"], "The tests' seeds, which the rules were written against")
    if result["held_out"]:
        lines += _table_md(result["held_out"], "Held-out seeds, drawn once the rules were final")
    lines += [f"Each optional rule left out in turn (seeds {_seeds(result['tuned']['seeds'])} together):", "",
              "| rule | planted data caught with / without | false positives with / without | what it does |",
              "| --- | ---: | ---: | --- |"]
    for rule, v in result["rules"].items():
        lines.append(f"| `{rule}` | {v['caught_with']} / {v['caught_without']} | {v['false_positives_with']} / "
                     f"{v['false_positives_without']} | {v['what']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
