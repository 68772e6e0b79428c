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

Notebook parameters (`-p KEY=VALUE`, `--params FILE`) reach every notebook that has them, after the scenario's: a
user's cast (`cards_dir`), their data (`traffic_path`, `labels_path`, `pairs_path`, `sft_path`, `dpo_path`,
`ab_log_path`), any stage knob. `check_parameters` checks them all before anything is written (docs/your-data.md).

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

import contextlib
import dataclasses
import os
import time
from pathlib import Path

from .config import DEFAULT_MODEL, SCENARIOS, resolve_profile, scenario_parameters
from .errors import ParameterError
from .notebooks import FINAL_NOTEBOOKS, SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, execute, notebook_path, parameters_of
from .paths import Run

MAX_GENERATIONS = 100   # more is a typo, not a plan: a cpu generation takes 14-17 minutes


def check_arguments(run_dir, *, profile, generations, seed, model_name, scenario, parameters=None) -> str:
    """Every argument of the flywheel, checked before anything is written or loaded (the notebook parameters by
    `check_parameters`). Returns the profile resolved ('auto' -> gpu or cpu)."""
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


# Set by the flywheel itself, for every notebook: a parameter file cannot override them.
RESERVED = ("run_dir", "generation", "profile", "seed", "model_name", "label", "control_adapter", "treatment_adapter")
SOURCES = {"traffic_path": "conversations", "sft_path": "conversations", "labels_path": "preferences",
           "pairs_path": "preferences", "dpo_path": "preferences", "ab_log_path": "ab_log"}


def notebook_parameters() -> dict[str, tuple[str, object]]:
    """name -> (first notebook that has it, its default) over every notebook the flywheel runs."""
    known: dict[str, tuple[str, object]] = {}
    for name in SETUP_NOTEBOOKS + STAGE_NOTEBOOKS + FINAL_NOTEBOOKS:
        if notebook_path(name).exists():
            for key, default in parameters_of(notebook_path(name)).items():
                known.setdefault(key, (name, default))
    return known


def _literal(text):
    """A notebook default as papermill reports it (its source text) -> the value; None where it is no literal."""
    import ast

    try:
        return ast.literal_eval(text) if isinstance(text, str) else text
    except (ValueError, SyntaxError):
        return None


def _local(value):
    """A path given relative to where the command runs, made absolute (the notebooks run elsewhere); anything that
    is no existing path (a Hub id) stays as it is."""
    if isinstance(value, dict) and "path" in value:
        return dict(value, path=_local(value["path"]))
    if isinstance(value, str) and value.strip() and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def check_parameters(parameters: dict | None, profile: str) -> dict:
    """Notebook parameters for a batch run (`-p key=value`, `--params FILE`), checked before anything is written:
    each must be a parameter of a notebook the flywheel runs and not one it sets itself; values of the stage configs'
    fields are checked as the notebooks would check them (kit.config), plain values against the notebook's default's
    type; `cards_dir` must load, and every data source (`traffic_path`, `labels_path`, ...) is read and checked
    against its contract and the cast. Paths become absolute. Returns the parameters to pass."""
    from . import config as C
    from .world.characters import load_cards

    parameters = dict(parameters or {})
    if not parameters:
        return {}
    known = notebook_parameters()
    for key, value in parameters.items():
        if key in RESERVED:
            raise ParameterError(key, "a flag of the command (--run-dir, --profile, --seed, --model) rather than a "
                                 "notebook parameter; the flywheel sets it", value)
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ParameterError(key, f"a parameter of one of the notebooks{hint}; they are "
                                 f"{', '.join(sorted(set(known) - set(RESERVED)))}", key)
        default = _literal(known[key][1])
        if value is not None and type(default) in (bool, int, float, str) and not (
                type(value) is type(default) or (type(default) is float and type(value) is int)):
            raise ParameterError(key, f"a {type(default).__name__} like the notebook's default ({default!r})", value)
    configs = (C.GenerationConfig, C.WorldConfig, C.CurationConfig, C.RewardModelConfig, C.PolicyConfig,
               C.EvalConfig, C.ABConfig)
    for cls in configs:
        fields = {f.name for f in dataclasses.fields(cls)} - {"profile"}
        C.stage_config(cls, profile, **{k: v for k, v in parameters.items() if k in fields})
    parameters = {k: _local(v) if k in SOURCES or k.endswith(("_dir", "_adapter")) else v
                  for k, v in parameters.items()}
    if "ab_split" in parameters and parameters["ab_split"] is not None:
        from .abtest import designed_split

        designed_split(parameters["ab_split"])
    if "report_to" in parameters:
        from .training import check_report_to

        check_report_to(parameters["report_to"])
    cards = load_cards(parameters.get("cards_dir"))
    for key, kind in SOURCES.items():
        if parameters.get(key) is not None:
            check_source(kind, parameters[key], cards, parameters)
    return parameters


def check_source(kind: str, source, cards: dict, parameters: dict) -> int:
    """Read one data source the way its notebook will, so a bad record stops the run before anything is written.
    Returns the number of records."""
    from . import data

    if kind == "conversations":
        return len(data.load_conversations(source, cards))
    if kind == "preferences":
        return len(data.load_preferences(source, cards))
    return len(data.load_ab_log(source, parameters.get("ab_arms")))


OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def needs_hub(model_name: str, parameters: dict) -> bool:
    """Whether a notebook will load something from the Hugging Face Hub: a model that is neither embedded nor a
    local folder, or a data source that is a Hub dataset. Otherwise the notebooks run with HF_HUB_OFFLINE=1 (and
    its transformers / datasets twins), so a run on the embedded models never reaches for the network; with a Hub
    model or dataset they download it as usual."""
    from .models import EMBEDDED_MODELS
    from .sources import check_source as spec_of, kind_of

    if model_name not in EMBEDDED_MODELS and not Path(model_name).expanduser().exists():
        return True
    return any(kind_of(spec_of(parameters[k], k)) == "hub" for k in SOURCES if parameters.get(k) is not None)


@contextlib.contextmanager
def environment(variables: dict):
    """os.environ with `variables` set while the notebooks run (their kernels inherit it), as it was afterwards."""
    before = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_flywheel(run_dir: str, *, profile: str = "auto", generations: int = 3, seed: int = 0,
                 model_name: str = DEFAULT_MODEL, scenario: str = "none", parameters: dict | None = None,
                 progress: bool = True) -> Run:
    """`parameters`: notebook parameters for every notebook that has them (traffic_path, cards_dir, sft_lr, ...),
    after the scenario's; checked by `check_parameters` before anything is written."""
    profile = check_arguments(run_dir, profile=profile, generations=generations, seed=seed, model_name=model_name,
                              scenario=scenario)
    user = check_parameters(parameters, profile)
    previous = run_manifest_parameters(run_dir)
    params = dict(profile=profile, generations=generations, seed=seed, model_name=model_name, scenario=scenario,
                  notebook_parameters=user)
    same = ("profile", "seed", "model_name", "scenario", "notebook_parameters")
    defaults = {"scenario": "none", "notebook_parameters": {}}
    if previous and {k: previous.get(k, defaults.get(k)) for k in same} != {k: params[k] for k in same}:
        raise ParameterError("run_dir", f"a fresh directory, or the same profile/seed/model/scenario/notebook "
                             f"parameters as before ({previous})", params)
    run = Run(run_dir)
    for left in run.clean_interrupted():
        print(f"flywheel: removed what an interrupted write left: {left.relative_to(run.root)}")
    hub = needs_hub(model_name, user)
    # KIT_BATCH: no trainer progress bars in notebooks nobody watches (kit.training.show_progress)
    env = dict({"KIT_BATCH": "1"}, **({} if hub else {v: os.environ.get(v, "1") for v in OFFLINE}))
    run.update_manifest(parameters=params, seed=seed)
    with environment(env):
        _generations(run, profile, generations, seed, model_name, scenario, user, progress, hub)
    return run


def _generations(run: Run, profile: str, generations: int, seed: int, model_name: str, scenario: str, user: dict,
                 progress: bool, hub: bool) -> None:
    present = [n for n in STAGE_NOTEBOOKS if notebook_path(n).exists()]
    missing = [n for n in STAGE_NOTEBOOKS if n not in present]
    print(f"flywheel: run directory {run.root}, profile {profile}, seed {seed}, {generations} generation(s), "
          f"scenario {scenario}")
    if user:
        print("flywheel: notebook parameters: " + ", ".join(f"{k}={v!r}" for k, v in user.items()))
    if not hub:
        print("flywheel: embedded or local models and data only: the notebooks run with HF_HUB_OFFLINE=1")
    if missing:
        print(f"flywheel: stages not built yet, skipped: {', '.join(missing)}")
    base = dict(run_dir=str(run.root), profile=profile, seed=seed, model_name=model_name)
    timings = dict(run.manifest().get("timings", {}))
    plan = _Plan(generations, len(present))
    for name in SETUP_NOTEBOOKS:
        _run_once(run, 0, name, base, scenario, user, progress, timings, plan)
    for g in range(generations if present else 0):
        for name in present:
            _run_once(run, g, name, base, scenario, user, progress, timings, plan)
    last = _last_promoted(run, generations)
    if "07_ab_test" in present and generations:
        if last is not None:
            _run_once(run, last, "07_ab_test", base, scenario, user, progress, timings, plan,
                      key="07_ab_test:cumulative",
                      extra=dict(control_adapter="base", treatment_adapter=run.generation_status(last)
                                 ["candidate_adapter"], label="cumulative"))
        else:
            print("flywheel: no generation was promoted; no cumulative A/B test against the base model")
    for name in FINAL_NOTEBOOKS:
        if notebook_path(name).exists():
            _run_once(run, max(generations - 1, 0), name, base, scenario, user, progress, timings, plan,
                      key=f"{name}:final")
    run.update_manifest(finished=True, last_promoted=last)
    from .report import write_report

    print(f"flywheel: report at {write_report(run.root)}")
    print(f"flywheel: results under {run.root} (manifest.json, gen_*/<stage>/metrics.json, gen_*/notebooks/)")


def _last_promoted(run: Run, generations: int) -> int | None:
    gens = run.manifest().get("generations", {})
    done = [g for g in range(generations) if gens.get(str(g), {}).get("promoted")]
    return max(done) if done else None


def run_manifest_parameters(run_dir) -> dict | None:
    """The parameters an earlier run in `run_dir` recorded (None for a new directory), read without creating it."""
    path = Path(run_dir).expanduser() / "manifest.json"
    if not path.exists():
        return None
    from .paths import read_json

    return read_json(path).get("parameters")


class _Plan:
    """Where the run stands, for the one line each stage prints."""

    def __init__(self, generations: int, stages: int):
        self.generations, self.stages, self.started = generations, stages, time.perf_counter()

    def where(self, generation: int, key: str) -> str:
        name = key.split(":")[0]
        step = f"{STAGE_NOTEBOOKS.index(name) + 1}/{self.stages} " if name in STAGE_NOTEBOOKS and \
            ":" not in key else ""
        return f"[gen_{generation} of {self.generations}] {step}{key}"

    def elapsed(self) -> str:
        minutes = (time.perf_counter() - self.started) / 60
        return f"{minutes:.1f} min in all"


def _run_once(run: Run, generation: int, name: str, base: dict, scenario: str, user: dict, progress: bool,
              timings: dict, plan: _Plan, key: str | None = None, extra: dict | None = None) -> None:
    """Execute one notebook for one generation, unless the manifest records it as finished (resume). Parameters:
    the flywheel's, the scenario's, the user's (each notebook gets those it has), then `extra`."""
    key = key or name
    done = run.generation_status(generation).get("notebooks_done", [])
    where = plan.where(generation, key)
    if key in done:
        print(f"{where}: finished earlier, skipped (resume)")
        return
    params = dict(base, generation=generation)
    known = parameters_of(notebook_path(name))
    params.update({k: v for k, v in scenario_parameters(scenario, name).items() if k in known})
    params.update({k: v for k, v in user.items() if k in known})
    params.update(extra or {})
    start = time.perf_counter()
    out = execute(name, run, generation, params, progress=progress, output_name=key.replace(":", "_"),
                  status=where)
    seconds = time.perf_counter() - start
    timings[f"gen_{generation}/{key}"] = round(seconds, 1)
    run.update_manifest(timings=timings)
    run.set_generation(generation, notebooks_done=done + [key])
    print(f"{where}: done in {seconds:.0f} s ({plan.elapsed()}) -> {out.relative_to(run.root)}", flush=True)


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


def steerability_from_base(traj):
    """Instruction following and violation rate of the base model (deployed at generation 0) and then of each
    generation's candidate, on the held-out prompts of its generation; None before any evaluation ran. `traj`: a
    `trajectory` table."""
    import pandas as pd

    if "instruction_following" not in traj or not len(traj):
        return None
    return pd.DataFrame({"policy": ["base"] + [f"gen {g} candidate" for g in traj["generation"]],
                         "instruction_following": [traj["deployed_instruction_following"].iloc[0]]
                         + traj["instruction_following"].tolist(),
                         "violation_rate": [traj["deployed_violation_rate"].iloc[0]] + traj["violation_rate"].tolist()})


def cumulative(run: Run) -> dict | None:
    """The final A/B test of the last promoted generation against the base model, if it ran."""
    last = run.manifest().get("last_promoted")
    if last is None or not run.has_metrics(last, "ab", "cumulative"):
        return None
    return dict(run.read_metrics(last, "ab", "cumulative"), generation=last)
