"""The flywheel: every stage notebook, generation after generation, into one run directory.

Per generation: 02 curation + annotation, 03 reward models, 04 rejection sampling + SFT, 05 DPO + RL, 06 offline
evaluation with the gate, 07 the A/B test and the promotion decision. A promoted candidate serves the next
generation's traffic; a rejected one does not. At the end, one more A/B test of the last promoted generation
against the base model measures the cumulative lift (rather than multiplying per-generation lifts), and notebook
08 draws the trajectory.

A rerun of the same command resumes: a notebook whose executed copy is recorded as finished in the manifest is
not run again, and what a killed run's interrupted writes left behind is removed first. A notebook that fails is
kept as gen_<g>/notebooks/<name>.failed.ipynb, and the run stops with one line naming the notebook, the cell and
the error.

Scenarios (`--scenario`) are the lessons, each a set of parameter overrides:

* `overfit`: aggressive RL on a biased reward (no KL term, 3x the steps, 5x the learning rate; the pair filter
  off, so the reward learns the raters' length and emoji biases): the reward-model win rate climbs past 65 %
  while users engage less, and the gate catches it;
* `emoji`: the raters' emoji bias doubled (0.6 -> 1.2 per emoji) and the emoji pair filter off: the emoji rate
  surges;
* `single_rater`: one rater per pair for training and evaluation labels: evaluation cannot separate models;
* `off_policy`: RL prompts drawn at random instead of near-policy: smaller gains.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .config import DEFAULT_MODEL, resolve_profile
from .errors import ParameterError
from .notebooks import FINAL_NOTEBOOKS, SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, execute, notebook_path, parameters_of
from .paths import Run

SCENARIOS: dict[str, dict[str, dict]] = {
    "none": {},
    "overfit": {"02_curation": {"length_filter": False, "emoji_filter": False},
                "05_dpo_rl": {"rl_beta": 0.0, "rl_loss_type": "dapo", "rl_steps_scale": 3.0, "rl_lr_scale": 5.0}},
    "emoji": {"02_curation": {"emoji_filter": False, "rater_emoji_bias": 1.2}},
    "single_rater": {"02_curation": {"n_raters": 1}},
    "off_policy": {"05_dpo_rl": {"rl_near_policy": False}},
}


def decide(gate: dict, ab: dict) -> dict:
    """Promote only when the offline gate passed, depth rose in the A/B test, and neither breadth nor depth fell
    significantly (its 95 % interval entirely below zero). Every reason is listed."""
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


def scenario_parameters(scenario: str, name: str) -> dict:
    if scenario not in SCENARIOS:
        raise ParameterError("scenario", f"one of {', '.join(SCENARIOS)}", scenario)
    return dict(SCENARIOS[scenario].get(name, {}))


MAX_GENERATIONS = 100   # more is a typo, not a plan: a cpu generation takes about 17 minutes


def check_arguments(run_dir, *, profile, generations, seed, model_name, scenario) -> str:
    """Every argument of the flywheel, checked before anything is written or loaded. Returns the profile resolved
    ('auto' -> gpu or cpu)."""
    if not isinstance(run_dir, (str, os.PathLike)) or not str(run_dir).strip():
        raise ParameterError("run_dir", "the path of a folder", run_dir)
    root = Path(run_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise ParameterError("run_dir", "a folder (a new one, or an earlier run's), not a file", str(run_dir))
    if root.is_dir() and not (root / "manifest.json").exists() and \
            any(not p.name.startswith(".") for p in root.iterdir()):
        raise ParameterError("run_dir", "a new or empty folder, or an earlier run's (it has no manifest.json and "
                             "is not empty)", str(run_dir))
    if type(generations) is not int or not 1 <= generations <= MAX_GENERATIONS:
        raise ParameterError("generations", f"an integer from 1 to {MAX_GENERATIONS}", generations)
    if type(seed) is not int or not 0 <= seed < 2**32:
        raise ParameterError("seed", "an integer from 0 to 2**32 - 1", seed)
    if not isinstance(model_name, str) or not model_name.strip() or model_name != model_name.strip():
        raise ParameterError("model_name", "an embedded model's name, a Hugging Face id or a local path", model_name)
    if model_name.startswith(("/", "./", "../", "~")) and not Path(model_name).expanduser().exists():
        raise ParameterError("model_name", "a local path that exists (or an embedded name or a Hugging Face id)",
                             model_name)
    if scenario not in SCENARIOS:
        raise ParameterError("scenario", f"one of {', '.join(SCENARIOS)}", scenario)
    return resolve_profile(profile)


def run_flywheel(run_dir: str, *, profile: str = "auto", generations: int = 3, seed: int = 0,
                 model_name: str = DEFAULT_MODEL, scenario: str = "none", progress: bool = True) -> Run:
    profile = check_arguments(run_dir, profile=profile, generations=generations, seed=seed, model_name=model_name,
                              scenario=scenario)
    run = Run(run_dir)
    for left in run.clean_interrupted():
        print(f"flywheel: removed what an interrupted write left: {left.relative_to(run.root)}")
    previous = run.manifest().get("parameters")
    params = dict(profile=profile, generations=generations, seed=seed, model_name=model_name, scenario=scenario)
    same = ("profile", "seed", "model_name", "scenario")
    if previous and {k: previous.get(k, "none" if k == "scenario" else None) for k in same} != \
            {k: params[k] for k in same}:
        raise ParameterError("run_dir", f"a fresh directory, or the same profile/seed/model/scenario as before "
                             f"({previous})", params)
    run.update_manifest(parameters=params, seed=seed)
    present = [n for n in STAGE_NOTEBOOKS if notebook_path(n).exists()]
    missing = [n for n in STAGE_NOTEBOOKS if n not in present]
    print(f"flywheel: run directory {run.root}, profile {profile}, seed {seed}, {generations} generation(s), "
          f"scenario {scenario}")
    if missing:
        print(f"flywheel: stages not built yet, skipped: {', '.join(missing)}")
    base = dict(run_dir=str(run.root), profile=profile, seed=seed, model_name=model_name)
    timings = dict(run.manifest().get("timings", {}))
    for name in SETUP_NOTEBOOKS:
        _run_once(run, 0, name, base, scenario, progress, timings)
    for g in range(generations if present else 0):
        for name in present:
            _run_once(run, g, name, base, scenario, progress, timings)
    last = _last_promoted(run, generations)
    if "07_ab_test" in present and generations:
        if last is not None:
            _run_once(run, last, "07_ab_test", base, scenario, progress, timings, key="07_ab_test:cumulative",
                      extra=dict(control_adapter="base", treatment_adapter=run.generation_status(last)
                                 ["candidate_adapter"], label="cumulative"))
        else:
            print("flywheel: no generation was promoted; no cumulative A/B test against the base model")
    for name in FINAL_NOTEBOOKS:
        if notebook_path(name).exists():
            _run_once(run, max(generations - 1, 0), name, base, scenario, progress, timings, key=f"{name}:final")
    run.update_manifest(finished=True, last_promoted=last)
    from .report import write_report

    print(f"flywheel: report at {write_report(run.root)}")
    print(f"flywheel: results under {run.root} (manifest.json, gen_*/<stage>/metrics.json, gen_*/notebooks/)")
    return run


def _last_promoted(run: Run, generations: int) -> int | None:
    gens = run.manifest().get("generations", {})
    done = [g for g in range(generations) if gens.get(str(g), {}).get("promoted")]
    return max(done) if done else None


def _run_once(run: Run, generation: int, name: str, base: dict, scenario: str, progress: bool, timings: dict,
              key: str | None = None, extra: dict | None = None) -> None:
    """Execute one notebook for one generation, unless the manifest records it as finished (resume)."""
    key = key or name
    done = run.generation_status(generation).get("notebooks_done", [])
    if key in done:
        print(f"[gen {generation}] {key}: finished earlier, skipped (resume)")
        return
    params = dict(base, generation=generation, **(extra or {}))
    known = parameters_of(notebook_path(name))
    params.update({k: v for k, v in scenario_parameters(scenario, name).items() if k in known})
    start = time.perf_counter()
    print(f"[gen {generation}] {key}: running ...", flush=True)
    out = execute(name, run, generation, params, progress=progress, output_name=key.replace(":", "_"))
    seconds = time.perf_counter() - start
    timings[f"gen_{generation}/{key}"] = round(seconds, 1)
    run.update_manifest(timings=timings)
    run.set_generation(generation, notebooks_done=done + [key])
    print(f"[gen {generation}] {key}: done in {seconds:.0f}s -> {out}")


def trajectory(run: Run):
    """One row per generation: A/B lifts with intervals, win rates (user, internal), steerability and style of
    the candidate, the gate and the decision. Read from the run's metrics files."""
    import pandas as pd

    rows = []
    gens = run.manifest().get("generations", {})
    for key in sorted(gens, key=int):
        g = int(key)
        row = {"generation": g, "promoted": bool(gens[key].get("promoted")),
               "candidate_stage": gens[key].get("candidate_stage")}
        if run.has_metrics(g, "eval"):
            ev = run.read_metrics(g, "eval")
            pw, pj = ev["win_rate"].get("pointwise", {}), ev["win_rate"].get("pairwise", {})
            row.update({"win_pointwise_user": pw.get("user"), "win_pointwise_internal": pw.get("internal"),
                        "win_pairwise_user": pj.get("user"), "win_pairwise_internal": pj.get("internal"),
                        "instruction_following": ev["instruction_following_rate"],
                        "violation_rate": ev["violation_rate"],
                        "deployed_instruction_following": ev["deployed"]["instruction_following_rate"],
                        "deployed_violation_rate": ev["deployed"]["violation_rate"],
                        "hidden_utility": ev["candidate"].get("hidden_utility"),
                        "deployed_hidden_utility": ev["deployed"].get("hidden_utility"),
                        "gate": ev["gate"]["promote"]})
            for m in ("emoji_rate", "mean_length", "preachy", "false_refusal", "list_rate", "wall_of_text"):
                row[m] = ev["candidate"]["production"][m]
                row[f"deployed_{m}"] = ev["deployed"]["production"][m]
        if run.has_metrics(g, "ab"):
            ab = run.read_metrics(g, "ab")
            for m in ("breadth", "depth"):
                row[f"{m}_lift"] = ab[m]["lift"]
                row[f"{m}_ci_low"], row[f"{m}_ci_high"] = ab[m]["ci95"]
            row["srm_p_value"] = ab["srm_p_value"]
        rows.append(row)
    return pd.DataFrame(rows)


def cumulative(run: Run) -> dict | None:
    """The final A/B test of the last promoted generation against the base model, if it ran."""
    last = run.manifest().get("last_promoted")
    if last is None or not run.has_metrics(last, "ab", "cumulative"):
        return None
    return dict(run.read_metrics(last, "ab", "cumulative"), generation=last)
