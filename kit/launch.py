"""Training stages as commands, for more than one GPU: `python -m kit train STAGE --run-dir R --generation G`.

Each command trains what its notebook trains, from the same run directory and the same config: the profile, seed,
model, scenario and notebook parameters the run recorded in its manifest (flags override the first three), the
parameters the flywheel gives that notebook (its scenario's, then the user's, those its parameters cell has), the
stage's inputs as the earlier notebooks saved them, its adapter written where the notebook writes it. Under
`accelerate launch` it runs in every process; the Trainer shards the data and synchronises gradients (DDP), and an
accelerate config file chooses FSDP or DeepSpeed ZeRO instead:

    accelerate launch --num_processes 4 -m kit train sft --run-dir runs/main --generation 0
    accelerate launch --config_file fsdp.yaml -m kit train dpo --run-dir runs/main --generation 0

Stages, in the method's order:

* `rm`: notebook 03's four reward models (pointwise, pairwise, the two user-signal models), when `rm_backbone` is a
  causal LM (`"policy"`): LoRA classifiers trained with TRL's RewardTrainer and a BCE Trainer. With an embedding
  backbone (the default, MiniLM) each model is a linear head on frozen embeddings that scikit-learn fits in
  seconds on one process; there is nothing to spread, so the command runs it in a single process and refuses,
  with a KitError, to run under more than one (a copy per process would only fit the same heads again).
  Notebook 03's evaluation cells are not run by any command.
* `sft`: notebook 04's SFT, on the SFT set its rejection sampling saved.
* `dpo`: notebook 05's DPO patch, from the SFT adapter, on the pairs the notebook builds (kit.dpo.run_patch).
* `rl`: notebook 05's online RL (GRPO or online DPO, `rl_algorithm`), on its near-policy prompts, rewarded as the
  notebook rewards (kit.rl.rl_reward), from the DPO adapter if there is one, else the SFT adapter.

Only the first process writes (the adapters, their metrics). The metrics are the training log only: the held-out
checks and the manifest's candidate adapter stay with the notebooks. Tested with two CPU processes for `sft`,
`dpo` and `rl` (online DPO, the default) (`accelerate launch --multi_gpu --num_processes 2` on a machine without a
GPU: torchrun, gloo; `--cpu --num_processes 2` would start only one): tests/test_launch.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .config import DEFAULT_MODEL, PolicyConfig, RewardModelConfig, scaled, stage_config
from .errors import KitError, ParameterError
from .paths import Run

STAGES = ("rm", "sft", "dpo", "rl")   # the commands `python -m kit train` offers (TRAINERS below), method order
RM_KINDS = {"pointwise": "rewards.pointwise", "pairwise": "rewards.pairwise",
            "continue": "rewards.signals.continue", "thumb_up": "rewards.signals.thumb_up"}


def processes() -> tuple[int, int]:
    """(this process's rank, the number of processes): from the launcher's environment, (0, 1) without one."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return processes()[0] == 0


def settings(run: Run, profile: str | None = None, seed: int | None = None, model_name: str | None = None) -> dict:
    """What the stage's notebook ran with: the manifest's parameters (a flywheel run records them), then the flags."""
    recorded = run.manifest().get("parameters") or {}
    out = {"profile": profile or recorded.get("profile"), "seed": recorded.get("seed", 0) if seed is None else seed,
           "model_name": model_name or recorded.get("model_name", DEFAULT_MODEL),
           "scenario": recorded.get("scenario") or "none",
           "notebook_parameters": dict(recorded.get("notebook_parameters") or {})}
    if out["profile"] is None:
        raise ParameterError("profile", f"a profile (tiny, cpu, gpu): {run.root} records none, pass --profile")
    return out


def notebook_parameters(s: dict, notebook: str) -> dict:
    """The parameters the flywheel gives notebook `notebook` (kit.flywheel._run_once): its scenario's, then the
    user's, those its parameters cell has."""
    from .flywheel import scenario_parameters
    from .notebooks import notebook_path, parameters_of

    known = parameters_of(notebook_path(notebook))
    given = {**scenario_parameters(s["scenario"], notebook), **s["notebook_parameters"]}
    return {k: v for k, v in given.items() if k in known}


def stage_cfg(cls, s: dict, notebook: str | None = None):
    """The stage config as the notebook builds it: the profile, then the notebook parameters that are its fields
    (with `notebook`: those that notebook is given, kit.launch.notebook_parameters)."""
    given = notebook_parameters(s, notebook) if notebook else s["notebook_parameters"]
    names = {f.name for f in dataclasses.fields(cls)} - {"profile"}
    return stage_config(cls, s["profile"], **{k: v for k, v in given.items() if k in names})


def _finish(run: Run, generation: int, written: bool, log: dict, metrics: dict, stage: str,
            sub: str | None = None) -> dict:
    """On the first process only: the metrics where the notebook writes them (`written`: the adapter went where the
    notebook writes it, not to --out), and the log, as one JSON line."""
    if is_main():
        if written:
            run.write_metrics(generation, stage, dict(metrics, launched=True), sub=sub)
        print(json.dumps({k: v for k, v in log.items() if k not in ("loss", "curves")}, default=str))
    return log


def _adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def train_rm(run_dir, generation: int, *, out=None, profile: str | None = None, seed: int | None = None,
             model_name: str | None = None) -> dict:
    """Notebook 03's reward models (pointwise, pairwise, continue, thumb_up) on the labels and logged replies of
    generation `generation`, saved to gen_<g>/rewards/<kind> (or `out`/<kind>). A causal-LM backbone
    (rm_backbone "policy") trains under the launcher; an embedding backbone runs on one process only."""
    from . import rewards
    from .annotation import import_labels, load_labels
    from .data import load_dataset_dir
    from .world.characters import load_cards

    run = Run(run_dir)
    s = settings(run, profile, seed, model_name)
    params = notebook_parameters(s, "03_reward_models")
    cfg = stage_cfg(RewardModelConfig, s, "03_reward_models")
    lm = rewards.lm_backbone(s["model_name"], cfg)
    n = processes()[1]
    if lm is None and n > 1:
        raise KitError(f"train rm: rm_backbone={cfg.rm_backbone!r} is an embedding reward model: each model is a "
                       f"linear head fit in seconds on one process, with nothing to spread over {n} processes. Run "
                       f"it without the launcher (python -m kit train rm ...), or set rm_backbone='policy' for a "
                       f"LoRA reward model that trains under it")
    if lm is None and is_main():
        print(f"train rm: rm_backbone={cfg.rm_backbone!r} is an embedding reward model: linear heads on frozen "
              f"embeddings, fit in seconds on this one process", flush=True)
    cards = load_cards(params.get("cards_dir"))
    pairs_path = params.get("pairs_path")
    train_pairs = import_labels(pairs_path, cards) if pairs_path else \
        load_labels(run, generation, "train_pairs", accumulate=cfg.rm_accumulate_labels)
    train_items = load_dataset_dir(run.artifact(generation, "curation.train_prompts", create=False)).to_list()
    where = {k: Path(out) / k if out else run.artifact(generation, name) for k, name in RM_KINDS.items()}
    logs = rewards.train_models(s["model_name"], train_pairs, train_items, cards, where, cfg, s["seed"])
    summary = {"backbone": lm or cfg.rm_backbone, "processes": n,
               **{k: {m: v for m, v in one.items() if m != "loss"} for k, one in logs.items()}}
    return _finish(run, generation, not out, summary, dict(training=logs, config=cfg.__dict__, processes=n),
                   "rewards")


def train_sft(run_dir, generation: int, *, out=None, profile: str | None = None, seed: int | None = None,
              model_name: str | None = None) -> dict:
    """Notebook 04's SFT: the SFT set of generation `generation` (and, with sft_accumulate, the earlier ones), a
    fresh LoRA adapter on the base model, saved to gen_<g>/policy/sft/adapter (or `out`)."""
    from . import sft
    from .data import load_generations
    from .world.characters import load_cards

    run = Run(run_dir)
    s = settings(run, profile, seed, model_name)
    cfg = stage_cfg(PolicyConfig, s, "04_sft")
    cards = load_cards(notebook_parameters(s, "04_sft").get("cards_dir"))
    records = [r for _, r in load_generations(run, generation, "policy.rs.sft_data", accumulate=cfg.sft_accumulate)]
    adapter = run.artifact(generation, "policy.sft.adapter")
    out = Path(out) if out else adapter
    log = sft.train_sft(s["model_name"], records, cards, out, cfg, s["seed"])
    log["processes"] = processes()[1]
    return _finish(run, generation, out == adapter, log,
                   dict(training=log, config=cfg.__dict__, adapter=str(out)), "policy", sub="sft")


def _policy_stage(s: dict):
    """What notebook 05 reads before it trains: its parameters, its config (rl_steps_scale and rl_lr_scale
    applied) and the cast."""
    from .world.characters import load_cards

    params = notebook_parameters(s, "05_dpo_rl")
    cfg = scaled(stage_cfg(PolicyConfig, s, "05_dpo_rl"), rl_steps=params.get("rl_steps_scale", 1.0),
                 rl_lr=params.get("rl_lr_scale", 1.0))
    return params, cfg, load_cards(params.get("cards_dir"))


def train_dpo(run_dir, generation: int, *, out=None, profile: str | None = None, seed: int | None = None,
              model_name: str | None = None) -> dict:
    """Notebook 05's DPO patch: the pairs it builds (kit.dpo.run_patch, or its dpo_path's imported pairs), from and
    anchored to the SFT adapter, saved to gen_<g>/policy/dpo/adapter (or `out`)."""
    from . import dpo
    from .annotation import import_labels
    from .config import CurationConfig
    from .rejection import load_saved

    run = Run(run_dir)
    s = settings(run, profile, seed, model_name)
    params, cfg, cards = _policy_stage(s)
    if params.get("run_dpo") is False:
        raise KitError(f"train dpo: {run.root} records run_dpo=false (notebook 05 trains no DPO patch)")
    sft_dir = run.artifact(generation, "policy.sft.adapter", create=False)
    if not _adapter(sft_dir):
        raise KitError(f"train dpo: {sft_dir}: no SFT adapter (the patch starts from it; run notebook 04 or "
                       f"`python -m kit train sft` first)")
    if params.get("dpo_path"):
        patch = import_labels(params["dpo_path"], cards)
    else:
        rs_items, rs_table = load_saved(run, generation)
        # notebook 05 reads the profile's consensus_agreement (it has no such parameter)
        patch = dpo.run_patch(run, generation, rs_items, rs_table, cards, cfg, s["seed"],
                              consensus_agreement=stage_config(CurationConfig, s["profile"]).consensus_agreement)
    adapter = run.artifact(generation, "policy.dpo.adapter")
    out = Path(out) if out else adapter
    log = dpo.train_dpo(s["model_name"], sft_dir, patch, cards, out, cfg, s["seed"])
    log["processes"] = processes()[1]
    return _finish(run, generation, out == adapter, log, dict(log, adapter=str(out), config=cfg.__dict__),
                   "policy", sub="dpo")


def rl_start(run: Run, generation: int) -> Path | None:
    """Where notebook 05's RL starts: the DPO adapter if the generation trained one, else the SFT adapter (None:
    neither)."""
    return next((p for p in (run.artifact(generation, "policy.dpo.adapter", create=False),
                             run.artifact(generation, "policy.sft.adapter", create=False)) if _adapter(Path(p))), None)


def train_rl(run_dir, generation: int, *, out=None, profile: str | None = None, seed: int | None = None,
             model_name: str | None = None) -> dict:
    """Notebook 05's online RL (cfg.rl_algorithm: grpo or online_dpo) on its prompts (kit.rl.prompts) with its
    reward (kit.rl.rl_reward), from the DPO adapter if there is one, else the SFT adapter; saved to
    gen_<g>/policy/rl/adapter (or `out`)."""
    from . import rl
    from .rejection import load_saved

    run = Run(run_dir)
    s = settings(run, profile, seed, model_name)
    params, cfg, cards = _policy_stage(s)
    if cfg.rl_algorithm == "none" or cfg.rl_steps <= 0:
        raise KitError(f"train rl: {run.root} records rl_algorithm={cfg.rl_algorithm!r}, rl_steps={cfg.rl_steps} "
                       f"(notebook 05 trains no RL)")
    start = rl_start(run, generation)
    if start is None:
        raise KitError(f"train rl: {run.gen(generation)}: no DPO or SFT adapter to start from (run notebooks 04 "
                       f"and 05, or `python -m kit train sft` first)")
    rs_items, rs_table = load_saved(run, generation)
    items, prompt_report = rl.prompts(rs_items, rs_table, cfg, s["seed"])
    reward = rl.rl_reward(run, generation, cards, rs_table, cfg, params.get("signal_weights"))
    adapter = run.artifact(generation, "policy.rl.adapter")
    out = Path(out) if out else adapter
    log = rl.train(s["model_name"], start, items, cards, reward, out, cfg, s["seed"])
    log.update(prompts=len(items), start_adapter=str(start), processes=processes()[1])
    return _finish(run, generation, out == adapter, log,
                   dict(training=log, prompts=prompt_report, adapter=str(out), start_adapter=str(start),
                        config=cfg.__dict__), "policy", sub="rl")


TRAINERS = {"rm": train_rm, "sft": train_sft, "dpo": train_dpo, "rl": train_rl}


def main(stage: str, run_dir, generation: int, **kwargs) -> dict:
    if stage not in TRAINERS:
        raise ParameterError("stage", f"one of {', '.join(TRAINERS)}", stage)
    if not (Path(run_dir).expanduser() / "manifest.json").exists():
        raise KitError(f"{run_dir}: no manifest.json (expected a run directory whose notebooks saved the stage's "
                       f"inputs)")
    return TRAINERS[stage](run_dir, generation, **kwargs)
