"""Wall time per stage notebook of finished flywheel runs, as measured by the flywheel itself.

    python bench/stages.py runs/tiny runs/cpu3 [--name stages]

`python -m kit flywheel` records the seconds each notebook took (papermill start to finish, kernel start
included) in the run's manifest.json. This reads one or more run directories and prints, per profile, a table of
notebook x generation, with the device, thread count and the package versions the run recorded; it writes
bench/results/<name>.json and .md. Nothing is re-run: the figures are the run's own, so they cover exactly the
settings the run used (its profile and seed, recorded beside them).
"""
from __future__ import annotations

import argparse
import platform
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def device() -> dict:
    import os

    import torch

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "python": platform.python_version(), "gpu": None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_table(run_dir: str | Path) -> dict:
    """{profile, seed, generations, stages: {notebook: {generation: seconds}}, per_generation, total} of one run."""
    from kit.errors import KitError
    from kit.paths import Run

    run = Run(run_dir)
    manifest = run.manifest()
    timings = manifest.get("timings")
    if not timings:
        raise KitError(f"{run.root}/manifest.json: no `timings`; run `python -m kit flywheel` on it first")
    params = manifest.get("parameters", {})
    stages: dict[str, dict[str, float]] = defaultdict(dict)
    per_gen: dict[str, float] = defaultdict(float)
    for key, seconds in timings.items():
        gen, _, notebook = key.partition("/")
        if not notebook:
            raise KitError(f"{run.root}/manifest.json: timing key {key!r} is not 'gen_<g>/<notebook>'")
        stages[notebook][gen] = float(seconds)
        per_gen[gen] += float(seconds)
    return {"run_dir": str(run_dir), "profile": params.get("profile"), "seed": params.get("seed"),
            "generations": sorted(per_gen, key=lambda g: int(g.split("_")[1])), "stages": dict(stages),
            "per_generation": dict(per_gen), "total_seconds": round(sum(per_gen.values()), 1),
            "versions": manifest.get("versions"), "git_commit": manifest.get("git_commit")}


def markdown(tables: list[dict], dev: dict) -> str:
    parts = [f"Wall time per stage notebook (seconds; papermill, kernel start included) on {dev['cpu']}, "
             f"{dev['cores']} cores, {dev['threads']} torch threads" + (f", {dev['gpu']}" if dev["gpu"] else "")]
    for t in tables:
        gens = t["generations"]
        lines = [f"**{t['run_dir']}** (profile {t['profile']}, seed {t['seed']}): "
                 f"{t['total_seconds']:.0f} s in all ({t['total_seconds'] / 60:.1f} min)", "",
                 "| notebook | " + " | ".join(gens) + " |", "| --- |" + " ---: |" * len(gens)]
        for notebook, by_gen in t["stages"].items():
            lines.append(f"| {notebook} | " + " | ".join(f"{by_gen[g]:.0f}" if g in by_gen else "" for g in gens)
                         + " |")
        lines.append("| **all** | " + " | ".join(f"**{t['per_generation'][g]:.0f}**" for g in gens) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--name", default="stages", help="file name under bench/results/ (without extension)")
    args = ap.parse_args()
    from kit.paths import package_versions, write_json, write_text

    tables = [run_table(d) for d in args.run_dirs]
    dev = device()
    md = markdown(tables, dev)
    print(md)
    out = Path(__file__).resolve().parent / "results"
    write_json(out / f"{args.name}.json", {"device": dev, "versions_now": package_versions(), "runs": tables})
    write_text(out / f"{args.name}.md", md)


if __name__ == "__main__":
    main()
