"""Supervised fine-tuning (step 4a of the method) on the rejection-sampled set, with TRL's SFTTrainer.

Every generation starts again from the base model with a fresh LoRA adapter, as the paper does: the data, not the
weights, carry the previous generation forward. Examples are in TRL's conversational prompt-completion form (the
card as system message + the conversation so far -> the reply), so the loss falls only on the assistant's reply
and its end-of-turn token (`completion_only_loss`); the model's own chat template renders them. Through the
backend switch the model is 4-bit QLoRA under Unsloth (with its gradient checkpointing) on a CUDA GPU, and
float32 LoRA on a CPU.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import KitError
from .training import ADAPTER_META, base_args, losses, save_adapter


def examples(records: list[dict], cards: dict) -> list[dict]:
    """SFT records (kit.rejection.sft_records) -> TRL prompt-completion rows with the card's system prompt, and
    `open_end`: the record's reply was cut short of its own end (kit.rejection.sft_records)."""
    rows = []
    for n, rec in enumerate(records):
        if rec["character_id"] not in cards:
            raise KitError(f"SFT record {n}: unknown character_id {rec['character_id']!r}")
        rows.append({"prompt": cards[rec["character_id"]].prompt(rec["prompt"], rec.get("user_name")),
                     "completion": [{"role": "assistant", "content": rec["completion"][0]["content"]}],
                     "open_end": bool(rec.get("open_end") or False)})
    return rows


def _ids(encoded) -> list[int]:
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def tokenized(tokenizer, rows: list[dict]) -> list[dict]:
    """Rows as TRL's tokenized form (input_ids, completion_mask), rendered by the model's chat template exactly as
    SFTTrainer renders them; an `open_end` row's end-of-turn tokens are left out of the loss, so the policy learns
    the reply's words but not to stop where the generation limit stopped it."""
    out = []
    for r in rows:
        prompt = _ids(tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True))
        ids = _ids(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True))
        start = next((i for i, (a, b) in enumerate(zip(prompt, ids)) if a != b), min(len(prompt), len(ids)))
        mask = [0] * start + [1] * (len(ids) - start)
        if r.get("open_end"):
            ends = [i for i in range(start, len(ids)) if ids[i] == tokenizer.eos_token_id]
            if ends:
                mask[ends[-1]:] = [0] * (len(ids) - ends[-1])
        out.append({"input_ids": ids, "completion_mask": mask})
    return out


def make_trainer(model, tokenizer, rows: list[dict], cfg, seed: int, out: str):
    """The SFTTrainer the kit trains with (exposed so a test can check exactly what the loss sees). With
    `cfg.sft_open_ends`, rows go in tokenized (`tokenized`), open-ended ones without their end of turn; otherwise
    in TRL's conversational form, every reply with its end of turn."""
    from datasets import Dataset

    from .models import choose_backend

    choose_backend(quiet=True)  # before TRL is bound: on its backend this imports Unsloth, which patches TRL
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(max_length=cfg.sft_max_length, completion_only_loss=True, packing=False,
                     eos_token=tokenizer.eos_token,
                     **base_args(out, seed, batch_size=cfg.sft_batch_size, epochs=cfg.sft_epochs, lr=cfg.sft_lr,
                                 max_steps=_steps(len(rows), cfg)))
    if getattr(cfg, "sft_open_ends", False):
        data = tokenized(tokenizer, rows)
    else:
        data = [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tokenizer)


def _steps(n_rows: int, cfg) -> int | None:
    """max_steps for the trainer: sft_epochs over the set, capped at sft_max_steps (None: no cap applies)."""
    import math

    if not cfg.sft_max_steps:
        return None
    return min(cfg.sft_max_steps, max(1, math.ceil(cfg.sft_epochs * math.ceil(n_rows / cfg.sft_batch_size))))


def fits(tokenizer, rows: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Rows whose rendered prompt + completion fit max_length (a cut reply would teach a reply without its end)."""
    kept = []
    for r in rows:
        n = len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True))
        if hasattr(n, "keys"):  # some tokenizers return a BatchEncoding
            n = len(n["input_ids"])
        if n <= max_length:
            kept.append(r)
    return kept, len(rows) - len(kept)


def train_sft(model_name: str, records: list[dict], cards: dict, out_dir, cfg, seed: int) -> dict:
    """Train a fresh LoRA adapter on the base model; save it (PEFT format, safetensors) to out_dir."""
    import time

    from .models import LoraSettings, choose_backend, load_policy

    rows = examples(records, cards)
    if not rows:
        raise KitError("SFT: no examples (rejection sampling kept nothing)")
    lora = LoraSettings(r=cfg.sft_lora_r, alpha=2 * cfg.sft_lora_r, top_layers=cfg.sft_lora_layers)
    model, tok = load_policy(model_name, trainable=True, lora=lora, max_seq_length=cfg.sft_max_length, seed=seed)
    tok.padding_side = "right"
    rows, too_long = fits(tok, rows, cfg.sft_max_length)
    if not rows:
        raise KitError(f"SFT: every example is longer than sft_max_length={cfg.sft_max_length} tokens")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(model, tok, rows, cfg, seed, tmp)
        data = trainer.train_dataset
        tokens = sum(len(x) for x in data["input_ids"])
        if "labels" in data.column_names:
            target = sum(sum(1 for x in lab if x != -100) for lab in data["labels"])
        elif "completion_mask" in data.column_names:
            target = sum(sum(m) for m in data["completion_mask"])
        else:
            target = None
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    backend = choose_backend(quiet=True)
    meta = {"stage": "sft", "base_model": model_name, "backend": backend.name, "examples": len(rows), "seed": seed}
    save_adapter(trainer.model, out_dir, meta)
    steps = trainer.state.global_step
    epochs = steps * cfg.sft_batch_size / len(rows)
    return {"examples": len(rows), "dropped_too_long": too_long, "loss": losses(trainer), "steps": steps,
            "epochs": round(epochs, 2),
            "tokens_per_epoch": tokens, "loss_tokens_per_epoch": target, "seconds": seconds,
            "tokens_per_second": tokens * epochs / seconds if seconds else None, "backend": backend.name}


def load_adapter_check(adapter_dir) -> str:
    """Load the saved adapter the standard way (PEFT's AutoPeftModelForCausalLM): its class name."""
    from .models import choose_backend

    choose_backend(quiet=True)  # Unsloth, on its backend, before PEFT
    from peft import AutoPeftModelForCausalLM

    if not (Path(adapter_dir) / "adapter_config.json").exists():
        raise KitError(f"{adapter_dir}: no adapter_config.json")
    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir))
    return type(model).__name__


__all__ = ["examples", "tokenized", "make_trainer", "fits", "train_sft", "load_adapter_check", "ADAPTER_META"]
