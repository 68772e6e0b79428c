"""How long each notebook takes on its own at a profile: what a workshop participant waits for.

    python bench/notebooks.py [--profile tiny] [--generations 1] [--name notebooks-tiny]

Runs the flywheel (`kit.flywheel.run_flywheel`: notebook 01, then 02-07 per generation, 08 at the end, each in a
kernel of its own, papermill start to finish) into a fresh temporary run directory, then notebook 00 on its own,
and prints every notebook's wall time with the slowest one. Writes bench/results/<name>.{json,md}. Run it alone on
the machine: two torch processes on two cores slow each other far more than twice.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(profile: str, generations: int, seed: int) -> dict:
    from kit.flywheel import run_flywheel
    from kit.notebooks import execute
    from kit.paths import Run

    with tempfile.TemporaryDirectory() as tmp:
        run = run_flywheel(str(Path(tmp) / "run"), profile=profile, generations=generations, seed=seed,
                           progress=False)
        timings = dict(run.manifest()["timings"])
        start = time.perf_counter()
        alone = Run(Path(tmp) / "quickstart")
        execute("00_quickstart", alone, 0, dict(run_dir=str(alone.root), generation=0, profile=profile, seed=seed),
                progress=False)
        timings["gen_0/00_quickstart"] = round(time.perf_counter() - start, 1)
    return {"profile": profile, "generations": generations, "seed": seed, "timings": timings}


def markdown(result: dict, dev: dict) -> str:
    t = result["timings"]
    rows = sorted(t.items(), key=lambda kv: (kv[0].split("/")[1][:2], kv[0]))
    worst = max(t.items(), key=lambda kv: kv[1])
    lines = [f"Each notebook on its own (papermill, a kernel of its own, start to finish) at the "
             f"`{result['profile']}` profile, seed {result['seed']}, {result['generations']} generation(s), on "
             f"{dev['cpu']}, {dev['cores']} cores, {dev['threads']} torch threads"
             + (f", {dev['gpu']}" if dev["gpu"] else "") + ".", "",
             "| notebook | seconds |", "| --- | ---: |"]
    lines += [f"| {key} | {seconds:.0f} |" for key, seconds in rows]
    lines += ["", f"Slowest: {worst[0]}, {worst[1]:.0f} s; all of them: {sum(t.values()) / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--generations", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default=None, help="file name under bench/results/ (default notebooks-<profile>)")
    args = ap.parse_args()
    from bench.stages import device
    from kit.paths import package_versions, write_json, write_text

    result = measure(args.profile, args.generations, args.seed)
    dev = device()
    md = markdown(result, dev)
    print(md)
    out = Path(__file__).resolve().parent / "results"
    name = args.name or f"notebooks-{args.profile}"
    write_json(out / f"{name}.json", {"device": dev, "versions": package_versions(), **result})
    write_text(out / f"{name}.md", md)


if __name__ == "__main__":
    main()
