"""What every trainer in the kit shares: arguments that follow the backend, adapter saving, loss histories,
token counting.

TRL and transformers trainers get the same base arguments (device, precision, seeds, no checkpoints, reporting as
`track` set it, progress bars unless in a batch run), so a stage differs from another only in what it trains on and
its own knobs.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import ParameterError
from .paths import atomic_path, write_json

ADAPTER_META = "kit_policy.json"
# Local experiment trackers transformers reports to: TensorBoard's event files, Trackio's local database. Both are
# optional packages (pip install tensorboard / trackio); nothing is reported unless a notebook asks (`report_to`).
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",)}
_TRACKING: dict = {}


def check_report_to(report_to: str | None) -> str | None:
    """`report_to` as given, if it names a tracker that is installed (None and "none": no reporting)."""
    if report_to in (None, "none"):
        return None
    if report_to not in TRACKERS:
        raise ParameterError("report_to", f"one of {', '.join(TRACKERS)}, or None", report_to)
    if not any(importlib.util.find_spec(m) for m in TRACKERS[report_to]):
        raise ParameterError("report_to", f"an installed tracker ('{report_to}' needs: pip install {report_to})",
                             report_to)
    return report_to


def track(report_to: str | None, run=None, generation: int = 0, label: str = "train") -> None:
    """Report every trainer this process runs from now on to `report_to` ("tensorboard" or "trackio"; None: none).
    TensorBoard logs go to <run_dir>/tracking/gen_<g>/<label>-<n>/ (`tensorboard --logdir <run_dir>/tracking`);
    Trackio logs locally under project characterflywheel-<run folder> (`trackio show`)."""
    _TRACKING.clear()
    if check_report_to(report_to) is None:
        return
    root = Path(run.root) if run is not None else Path.cwd()
    _TRACKING.update(report_to=report_to, root=root, generation=int(generation), label=label, count=0)


def _reporting() -> dict:
    """The reporting arguments of the next trainer (and, for TensorBoard, its folder: transformers 5 reads it from
    TENSORBOARD_LOGGING_DIR only)."""
    if not _TRACKING:
        return {"report_to": []}
    _TRACKING["count"] += 1
    name = f"{_TRACKING['label']}-{_TRACKING['count']}"
    if _TRACKING["report_to"] == "tensorboard":
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(_TRACKING["root"] / "tracking" / f"gen_{_TRACKING['generation']}"
                                                    / name)
        return {"report_to": ["tensorboard"], "run_name": name}
    return {"report_to": ["trackio"], "project": f"characterflywheel-{_TRACKING['root'].name}",
            "run_name": f"gen_{_TRACKING['generation']}-{name}"}


def show_progress() -> bool:
    """TRL's progress bars: on where a person watches (a notebook, a terminal); off in the flywheel's batch runs,
    which set KIT_BATCH=1 for their notebooks: nobody watches those kernels, and every bar update would be kept as
    output in the executed notebooks the run saves (the flywheel prints one line per stage instead)."""
    return os.environ.get("KIT_BATCH") != "1"


def base_args(out: str, seed: int, *, batch_size: int, epochs: float | None = None, lr: float,
              max_steps: int | None = None, schedule: str = "cosine", warmup: float = 0.0) -> dict:
    """Arguments shared by every trainer. `out` is a scratch folder (nothing is checkpointed there).

    No warm-up by default. transformers rounds a warm-up fraction up to whole steps and runs the first step at
    learning rate 0, so in the short runs of the tiny and cpu profiles (a DPO patch of 2 steps, a few RL steps) the
    first step was wasted: the cpu profile's DPO patch logged a loss of exactly log 2 at both of its steps. LoRA
    starts from B = 0, so the first updates are small anyway. Pass `warmup` (a fraction) for long runs."""
    from .models import choose_backend

    backend = choose_backend(quiet=True)
    args = dict(output_dir=out, per_device_train_batch_size=batch_size, gradient_accumulation_steps=1,
                learning_rate=lr, lr_scheduler_type=schedule, warmup_steps=warmup, logging_steps=1,
                save_strategy="no", seed=seed, data_seed=seed, use_cpu=backend.device == "cpu",
                bf16=backend.dtype == "bfloat16", fp16=backend.dtype == "float16", disable_tqdm=not show_progress(),
                # The same optimiser on every backend: Unsloth's configs default to adamw_8bit with weight decay
                # 0.001, transformers' to fused AdamW without decay (what the CPU runs used).
                optim="adamw_torch_fused", weight_decay=0.0,
                # TRL's configs turn gradient checkpointing on by default. On a GPU it trades compute for memory
                # that matters; on the CPU memory is plentiful and recomputing activations only costs time
                # (bench/speed.py compares the kit's path with plain TRL defaults).
                gradient_checkpointing=backend.device != "cpu",
                # Under DDP (kit.launch): every LoRA parameter takes part in every forward pass, so DDP need not
                # search the graph for unused ones at each step (transformers' default when not checkpointing)
                ddp_find_unused_parameters=False)
    args.update(_reporting())
    if max_steps is not None:
        args["max_steps"] = max_steps
    if epochs is not None:
        args["num_train_epochs"] = epochs
    return args


def losses(trainer, key: str = "loss") -> list[float]:
    return [round(float(h[key]), 5) for h in trainer.state.log_history if key in h]


def history(trainer, keys: tuple[str, ...]) -> dict[str, list[float]]:
    """Per logged step, each of `keys` that the trainer logged (reward, kl, completion length, ...)."""
    out = {}
    for key in keys:
        values = [float(h[key]) for h in trainer.state.log_history if key in h and "train_runtime" not in h]
        if values:
            out[key] = [round(v, 5) for v in values]
    return out


def save_adapter(model, out_dir, meta: dict, *, adapter_name: str = "default", meta_name: str = ADAPTER_META) -> Path:
    """Save one PEFT adapter (safetensors) and the kit's note beside it, atomically. Only `adapter_name` is
    saved: the frozen reference copies TRL adds while training ("ref") stay out of the artifact. Under a launcher
    with several processes (kit.launch), only the first writes: they hold the same weights."""
    if int(os.environ.get("RANK", "0")) != 0:
        return Path(out_dir)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True, selected_adapters=[adapter_name])
        sub = tmp / adapter_name
        if adapter_name != "default" and sub.is_dir():   # PEFT nests non-default adapters in a subfolder
            for f in sub.iterdir():
                f.rename(tmp / f.name)
            sub.rmdir()
        write_json(tmp / meta_name, meta)
    return Path(out_dir)


def export_merged(model_name: str, adapter_dir, out_dir) -> Path:
    """Base + adapter merged into one full model folder (safetensors), with the tokenizer."""
    from .models import choose_backend, load_policy

    backend = choose_backend(quiet=True)
    if backend.load_in_4bit:
        from .models import Backend

        # merging into 4-bit weights would round the adapter away: merge on a full-precision copy
        backend = Backend("transformers-cpu", "cpu", "float32", False)
    model, tok = load_policy(model_name, adapter_dir, backend=backend)
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model  # merged at load
    with atomic_path(out_dir) as tmp:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
    return Path(out_dir)


def count_tokens(dataset, column: str = "input_ids") -> int:
    return int(sum(len(x) for x in dataset[column])) if column in dataset.column_names else 0
