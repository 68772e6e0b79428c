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

    from .config import PROFILES
    from .flywheel import SCENARIOS
    from .launch import STAGES

    scenarios = tuple(SCENARIOS)
    fly = sub.add_parser("flywheel", help="run every stage notebook per generation into a run directory",
                         allow_abbrev=False)
    fly.add_argument("--run-dir", default="runs/main")
    fly.add_argument("--profile", default="auto", metavar="{" + ",".join((*PROFILES, "auto")) + "}",
                     help=f"{' | '.join(PROFILES)} | auto (gpu on CUDA, else cpu); default auto")
    fly.add_argument("--generations", type=int, default=3)
    fly.add_argument("--seed", type=int, default=0)
    fly.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, HF id or local path")
    fly.add_argument("--scenario", default="none", metavar="{" + ",".join(scenarios) + "}",
                     help=f"{' | '.join(scenarios)}: the lessons (kit/flywheel.py); default none")
    fly.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="a notebook parameter for every notebook that has it (repeatable): e.g. -p "
                          "traffic_path=logs.jsonl -p cards_dir=my_cards -p sft_lr=1e-3; VALUE is read as JSON "
                          "(numbers, true/false, null, {...}), else as text")
    fly.add_argument("--params", default=None, metavar="FILE",
                     help="notebook parameters from a YAML or JSON file (an object); -p overrides it")

    exp = sub.add_parser("export", help="the promoted policy (or a generation's candidate) as a merged model, its "
                         "adapter, a model card and its datasets", allow_abbrev=False)
    exp.add_argument("run_dir", help="a flywheel run directory")
    exp.add_argument("--generation", type=int, default=None,
                     help="export this generation's candidate (default: the policy promoted last)")
    exp.add_argument("--out", default=None, help="default: RUN_DIR/export/gen_<g>/")
    exp.add_argument("--no-merged", action="store_true", help="the adapter only (no merged model)")
    exp.add_argument("--no-datasets", action="store_true", help="leave out datasets/")
    exp.add_argument("--push-to-hub", default=None, metavar="REPO",
                     help="upload the model and adapter (not the datasets) to this Hub repository, private")
    exp.add_argument("--public", action="store_true", help="with --push-to-hub: create the repository public")

    trn = sub.add_parser("train", help="one training stage from a run directory, as its notebook trains it; runs "
                         "under `accelerate launch` for more than one GPU", allow_abbrev=False)
    trn.add_argument("stage", choices=STAGES,
                     help="rm: notebook 03's reward models (a LoRA backbone, rm_backbone='policy', under the "
                          "launcher; the default embedding heads on one process only); sft: notebook 04's SFT on "
                          "the SFT set it saved; dpo: notebook 05's DPO patch from the SFT adapter; rl: notebook "
                          "05's online RL (GRPO or online DPO) from the DPO adapter, else the SFT adapter")
    trn.add_argument("--run-dir", required=True)
    trn.add_argument("--generation", type=int, required=True)
    trn.add_argument("--out", default=None, help="default: where the notebook writes it (gen_<g>/policy/<stage>/adapter; "
                     "rm: gen_<g>/rewards/<kind>, with --out OUT/<kind>); with --out no metrics are written")
    trn.add_argument("--profile", default=None, help="default: the run's (manifest.json)")
    trn.add_argument("--seed", type=int, default=None, help="default: the run's")
    trn.add_argument("--model", default=None, help="default: the run's")

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

    mm = sub.add_parser("method-map", help="print the method's map (step -> notebook -> kit module -> artifacts), "
                        "from kit/method.py's table", allow_abbrev=False)
    mm.add_argument("--write", default=None, metavar="FILE",
                    help="instead, rewrite the map between FILE's <!-- method-map --> markers (e.g. README.md)")

    rep = sub.add_parser("report", help="write RUN_DIR/report.md (figures beside it) from a run's metrics files",
                         allow_abbrev=False)
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("--compare", default=None, metavar="OUT.md",
                     help="also write the runs' headline figures side by side (e.g. seeds 0, 1, 2) to OUT.md")
    rep.add_argument("--publish", default=None, metavar="DEST",
                     help="copy each run's metrics.json files, manifest and report to DEST/<run name>/")
    rep.add_argument("--lessons", default=None, metavar="OUT.md",
                     help="the RUN_DIRs are lesson runs (--scenario): write, to OUT.md, what each showed against "
                          "--baseline")
    rep.add_argument("--baseline", default=None, metavar="RUN_DIR",
                     help="with --lessons: a run of the same profile and seed without a scenario")
    rep.add_argument("--readme", default=None, metavar="FILE",
                     help="with --compare and --publish: put the side-by-side table and links to the published "
                          "reports between FILE's <!-- results --> markers (e.g. README.md)")

    args = parser.parse_args(argv)
    try:
        if args.command == "flywheel":
            from .flywheel import run_flywheel

            run_flywheel(args.run_dir, profile=args.profile, generations=args.generations, seed=args.seed,
                         model_name=args.model, scenario=args.scenario,
                         parameters=notebook_parameters(args.params, args.param))
        elif args.command == "export":
            from .export import check_repo, export, push_to_hub

            if args.push_to_hub is not None:   # checked before the model is merged, not after
                check_repo(args.push_to_hub)
            folder = export(args.run_dir, args.generation, args.out, merged=not args.no_merged,
                            datasets=not args.no_datasets)
            if args.push_to_hub:
                print("pushed:", push_to_hub(folder, args.push_to_hub, private=not args.public))
        elif args.command == "train":
            from .launch import main as train

            train(args.stage, args.run_dir, args.generation, out=args.out, profile=args.profile, seed=args.seed,
                  model_name=args.model)
        elif args.command == "samples":
            from .samples import make_samples

            make_samples(args.out, seed=args.seed)
        elif args.command == "steerability":
            import json

            from .data import load_conversations
            from .evaluation import steerability_by_source
            from .world.characters import load_cards

            cards = load_cards(args.cards)
            rates = steerability_by_source(cards, load_conversations(args.conversations, cards))
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

            if bool(args.lessons) != bool(args.baseline):
                raise KitError("report: --lessons OUT.md and --baseline RUN_DIR go together")
            if args.readme and not (args.compare and args.publish):
                raise KitError("report --readme: give --compare OUT.md and --publish DEST too (the README links the "
                               "published reports)")
            if args.readme:                                  # its markers checked before anything is written
                import os

                from .data import read_text
                from .report import with_results

                readme = read_text(args.readme, "a markdown file")
                with_results(readme, "", [], args.readme)
            for run_dir in args.run_dirs:
                print("wrote", write_report(run_dir))
                if args.publish:
                    print(f"copied {len(publish(run_dir, Path(args.publish) / Path(run_dir).name))} files to "
                          f"{Path(args.publish) / Path(run_dir).name}")
            if args.lessons:
                import os

                from .report import lessons_markdown

                where = Path(args.lessons).resolve().parent
                reports = [(Path(args.publish) / Path(d).name if args.publish else Path(d)).resolve() / "report.md"
                           for d in args.run_dirs]
                links = [Path(os.path.relpath(r, where)).as_posix() for r in reports]
                print("wrote", write_text(args.lessons, lessons_markdown(args.run_dirs, args.baseline, links=links)))
            if args.compare:
                table = compare_markdown(args.run_dirs)
                print("wrote", write_text(args.compare, table))
            if args.readme:
                base = Path(args.readme).resolve().parent
                links = []
                for d in args.run_dirs:
                    report = Path(args.publish).resolve() / Path(d).name / "report.md"
                    links.append(f"[{Path(d).name}]({Path(os.path.relpath(report, base)).as_posix()})")
                print("wrote", write_text(args.readme, with_results(readme, table, links, args.readme)))
        elif args.command == "method-map":
            from .data import read_text
            from .method import render_map, with_map
            from .paths import write_text

            if args.write:
                print("wrote", write_text(args.write, with_map(read_text(args.write, "a markdown file"), args.write)))
            else:
                print(render_map())
        elif args.command == "check-env":
            from .envcheck import check_env

            return 0 if check_env() else 1
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def parse_param(text: str) -> tuple[str, object]:
    """KEY=VALUE from the command line: VALUE as JSON where it is JSON (1e-3, true, null, {"a": 1}), else text."""
    import json

    from .errors import ParameterError

    key, eq, raw = text.partition("=")
    if not eq or not key.strip().isidentifier():
        raise ParameterError("param", "KEY=VALUE with a notebook parameter's name as KEY", text)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def notebook_parameters(path: str | None, pairs: list[str]) -> dict:
    """--params FILE (YAML or JSON, one object), then every -p KEY=VALUE over it."""
    params = read_params_file(path) if path else {}
    for text in pairs:
        key, value = parse_param(text)
        params[key] = value
    return params


def read_params_file(path) -> dict:
    """A YAML (.yaml, .yml) or JSON file holding one object of notebook parameters."""
    import re

    from .data import parse_json, read_text
    from .errors import DataError, said

    text = read_text(path, "a parameter file (YAML or JSON)")
    if str(path).lower().endswith((".yaml", ".yml")):
        import yaml

        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise DataError(path, mark.line + 1 if mark else None, None,
                            f"YAML ({getattr(exc, 'problem', None) or 'unreadable'})") from None
        # PyYAML reads YAML 1.1, where 1e-3 is text (1.0e-3 is a number): a learning rate written the common way
        # would reach the notebook as a string
        number = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")
        obj = {k: float(v) if isinstance(v, str) and number.match(v) else v for k, v in obj.items()} \
            if isinstance(obj, dict) else obj
    else:
        obj = parse_json(text, path, None, "a JSON object of notebook parameters")
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise DataError(path, None, None, "one object of notebook parameters (name: value)",
                        said(f"a {type(obj).__name__}"))
    return obj
