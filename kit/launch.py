"""Training stages as commands, for more than one GPU: `python -m kit train STAGE --run-dir R --generation G`.

Each command trains what its notebook trains, from the same run directory and the same config: the profile, seed,
model and notebook parameters the run recorded in its manifest (flags override them), the stage's inputs as its
notebook saved them, its adapter written where the notebook writes it. Under `accelerate launch` it runs in every
process; the Trainer shards the data and synchronises gradients (DDP), and an accelerate config file chooses FSDP
or DeepSpeed ZeRO instead:

    accelerate launch --num_processes 4 -m kit train sft --run-dir runs/main --generation 0
    accelerate launch --config_file fsdp.yaml -m kit train sft --run-dir runs/main --generation 0

Only the first process writes (the adapter, its metrics). Stages: `sft` (notebook 04's SFT, on the SFT set its
rejection sampling saved). Tested with two CPU processes (`accelerate launch --multi_gpu --num_processes 2` on a
machine without a GPU: torchrun, gloo; `--cpu --num_processes 2` would start only one): tests/test_launch.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .config import DEFAULT_MODEL, PolicyConfig, stage_config
from .errors import KitError, ParameterError
from .paths import Run

STAGES = ("sft",)   # the commands `python -m kit train` offers (TRAINERS below)


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
           "notebook_parameters": dict(recorded.get("notebook_parameters") or {})}
    if out["profile"] is None:
        raise ParameterError("profile", f"a profile (tiny, cpu, gpu): {run.root} records none, pass --profile")
    return out


def stage_cfg(cls, s: dict):
    """The stage config as the notebook builds it: the profile, then the notebook parameters that are its fields."""
    names = {f.name for f in dataclasses.fields(cls)} - {"profile"}
    return stage_config(cls, s["profile"], **{k: v for k, v in s["notebook_parameters"].items() if k in names})


def train_sft(run_dir, generation: int, *, out=None, profile: str | None = None, seed: int | None = None,
              model_name: str | None = None) -> dict:
    """Notebook 04's SFT: the SFT set of generation `generation` (and, with sft_accumulate, the earlier ones), a
    fresh LoRA adapter on the base model, saved to gen_<g>/policy/sft/adapter (or `out`)."""
    from . import sft
    from .data import load_generations
    from .world.characters import load_cards

    run = Run(run_dir)
    s = settings(run, profile, seed, model_name)
    cfg = stage_cfg(PolicyConfig, s)
    cards = load_cards(s["notebook_parameters"].get("cards_dir"))
    records = [r for _, r in load_generations(run, generation, "policy.rs.sft_data", accumulate=cfg.sft_accumulate)]
    adapter = run.artifact(generation, "policy.sft.adapter")
    out = Path(out) if out else adapter
    log = sft.train_sft(s["model_name"], records, cards, out, cfg, s["seed"])
    log["processes"] = processes()[1]
    if is_main():
        if out == adapter:
            run.write_metrics(generation, "policy", dict(training=log, config=cfg.__dict__, adapter=str(out),
                                                         launched=True), sub="sft")
        print(json.dumps({k: v for k, v in log.items() if k != "loss"}, default=str))
    return log


TRAINERS = {"sft": train_sft}


def main(stage: str, run_dir, generation: int, **kwargs) -> dict:
    if stage not in TRAINERS:
        raise ParameterError("stage", f"one of {', '.join(TRAINERS)}", stage)
    if not (Path(run_dir).expanduser() / "manifest.json").exists():
        raise KitError(f"{run_dir}: no manifest.json (expected a run directory whose notebooks saved the stage's "
                       f"inputs)")
    return TRAINERS[stage](run_dir, generation, **kwargs)
