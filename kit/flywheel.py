"""The flywheel: every stage notebook, generation after generation, into one run directory.

A rerun of the same command resumes: a notebook whose executed copy is recorded as finished in the manifest is
not run again.
"""
from __future__ import annotations

import time

from .config import DEFAULT_MODEL, resolve_profile
from .notebooks import SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, execute, notebook_path
from .paths import Run


def run_flywheel(run_dir: str, *, profile: str = "auto", generations: int = 3, seed: int = 0,
                 model_name: str = DEFAULT_MODEL, progress: bool = True) -> Run:
    profile = resolve_profile(profile)
    run = Run(run_dir)
    run.update_manifest(parameters=dict(profile=profile, generations=generations, seed=seed, model_name=model_name),
                        seed=seed)
    present = [n for n in STAGE_NOTEBOOKS if notebook_path(n).exists()]
    missing = [n for n in STAGE_NOTEBOOKS if n not in present]
    print(f"flywheel: run directory {run.root}, profile {profile}, seed {seed}, {generations} generation(s)")
    if missing:
        print(f"flywheel: stages not built yet, skipped: {', '.join(missing)}")
    params = dict(run_dir=str(run.root), profile=profile, seed=seed, model_name=model_name)
    for name in SETUP_NOTEBOOKS:
        _run_once(run, 0, name, params, progress)
    for g in range(generations if present else 0):
        for name in present:
            _run_once(run, g, name, params, progress)
    run.update_manifest(finished=True)
    print(f"flywheel: results under {run.root} (manifest.json, gen_*/<stage>/metrics.json, gen_*/notebooks/)")
    return run


def _run_once(run: Run, generation: int, name: str, params: dict, progress: bool) -> None:
    """Execute one notebook for one generation, unless the manifest records it as finished (resume)."""
    done = run.generation_status(generation).get("notebooks_done", [])
    if name in done:
        print(f"[gen {generation}] {name}: finished earlier, skipped (resume)")
        return
    start = time.perf_counter()
    print(f"[gen {generation}] {name}: running ...", flush=True)
    out = execute(name, run, generation, dict(params, generation=generation), progress=progress)
    run.set_generation(generation, notebooks_done=done + [name])
    print(f"[gen {generation}] {name}: done in {time.perf_counter() - start:.0f}s -> {out}")
