"""Command line: `python -m kit <command>`. Imports nothing heavy until a command runs."""
from __future__ import annotations

import argparse
import sys

from .errors import KitError


def main(argv=None) -> int:
    # allow_abbrev=False everywhere: a mistyped --generation must be an error, not --generations
    parser = argparse.ArgumentParser(prog="python -m kit", description="CharacterFlywheel notebook kit",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    fly = sub.add_parser("flywheel", help="run every stage notebook per generation into a run directory",
                         allow_abbrev=False)
    fly.add_argument("--run-dir", default="runs/main")
    fly.add_argument("--profile", default="auto", help="tiny | cpu | gpu | auto (gpu on CUDA, else cpu)")
    fly.add_argument("--generations", type=int, default=3)
    fly.add_argument("--seed", type=int, default=0)
    fly.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, HF id or local path")
    fly.add_argument("--scenario", default="none",
                     help="none | overfit | emoji | single_rater | off_policy (the lessons; see kit/flywheel.py)")

    smp = sub.add_parser("samples", help="regenerate data_samples/ with a fixed seed", allow_abbrev=False)
    smp.add_argument("--out", default=None, help="default: the repository's data_samples/")
    smp.add_argument("--seed", type=int, default=0)

    st = sub.add_parser("steerability", help="instruction following and violation rates of a conversations file",
                        allow_abbrev=False)
    st.add_argument("conversations", help="JSONL in the conversation contract (e.g. data_samples/conversations.jsonl)")
    st.add_argument("--cards", default=None, help="folder of character cards (default: data_samples/cards)")

    cln = sub.add_parser("clean-notebooks", help="clear outputs of notebooks/*.ipynb before committing them",
                         allow_abbrev=False)
    cln.add_argument("paths", nargs="*", help="default: every notebook under notebooks/")

    sub.add_parser("check-env", help="print OK/FAIL for every package and embedded model the kit needs",
                   allow_abbrev=False)

    rep = sub.add_parser("report", help="write RUN_DIR/report.md (figures beside it) from a run's metrics files",
                         allow_abbrev=False)
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("--compare", default=None, metavar="OUT.md",
                     help="also write the runs' headline figures side by side (e.g. seeds 0, 1, 2) to OUT.md")
    rep.add_argument("--publish", default=None, metavar="DEST",
                     help="copy each run's metrics.json files, manifest and report to DEST/<run name>/")

    args = parser.parse_args(argv)
    try:
        if args.command == "flywheel":
            from .flywheel import run_flywheel

            run_flywheel(args.run_dir, profile=args.profile, generations=args.generations, seed=args.seed,
                         model_name=args.model, scenario=args.scenario)
        elif args.command == "samples":
            from .samples import make_samples

            make_samples(args.out, seed=args.seed)
        elif args.command == "steerability":
            import json

            from .data import load_conversations
            from .world.characters import load_cards
            from .world.tour import steerability

            cards = load_cards(args.cards)
            rates = steerability(cards, load_conversations(args.conversations, cards))
            print(json.dumps(rates, indent=2))
        elif args.command == "clean-notebooks":
            from pathlib import Path

            from .notebooks import notebooks_dir, read_notebook, strip_outputs

            paths = [Path(p) for p in args.paths] or sorted(notebooks_dir().glob("*.ipynb"))
            for path in paths:   # every one checked before any is rewritten
                read_notebook(path)
            for path in paths:
                print(f"{'cleaned' if strip_outputs(path) else 'clean  '} {path}")
        elif args.command == "report":
            from pathlib import Path

            from .paths import write_text
            from .report import compare_markdown, publish, write_report

            for run_dir in args.run_dirs:
                print("wrote", write_report(run_dir))
                if args.publish:
                    print(f"copied {len(publish(run_dir, Path(args.publish) / Path(run_dir).name))} files to "
                          f"{Path(args.publish) / Path(run_dir).name}")
            if args.compare:
                print("wrote", write_text(args.compare, compare_markdown(args.run_dirs)))
        elif args.command == "check-env":
            from .envcheck import check_env

            return 0 if check_env() else 1
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
