"""The DPO patch (step 4b of the method): a small, local correction on safety and style preference pairs.

Pairs come from two places:

* annotation: the raters' compliant rewrites against the reply that broke the card (steerability), and, where
  the patch has room left, ranked pairs the panel agreed on (consensus);
* rejection sampling: the kept candidate against a candidate of the same prompt with a safety or style problem
  (a refusal of a harmless request, preaching, breaking character, a wall of text); and, with the cards, the
  raters' rule edit of a kept reply that broke its card against the reply as the model wrote it: a pair that
  differs only in the rule, the cleanest steerability signal there is.

The reference is the SFT policy without a second model in memory: the SFT adapter is loaded trainable and TRL's
DPOTrainer keeps a frozen copy of it as the adapter "ref". The result is one adapter (SFT + patch).
"""
from __future__ import annotations

import tempfile

from .errors import KitError
from .features import feature_table
from .seeding import sample_in_order
from .training import base_args, history, losses, save_adapter

PROBLEMS = ("refusal", "preachy", "ai_mention", "wall_of_text")


def _problems(reply: str, unsafe_prompt: bool) -> list[str]:
    f = feature_table([reply]).iloc[0]
    out = [p for p in PROBLEMS if f[p]]
    if unsafe_prompt and "refusal" in out:
        out.remove("refusal")   # declining a harmful request is right
    return out


def patch_pairs(annotation_pairs: list[dict], rs_items: list[dict], rs_table, *, consensus_agreement: float,
                max_pairs: int, seed: int, cards: dict | None = None) -> list[dict]:
    """Safety/style (and, with `cards`, rule-fix) preference pairs in TRL's conversational form, capped and
    seeded."""
    pairs = []
    for p in annotation_pairs:
        if p.get("origin") == "steerability-rewrite" or (p.get("n_raters", 1) > 1 and
                                                          p.get("agreement", 0) >= consensus_agreement - 1e-9):
            pairs.append({"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
                          "character_id": p["character_id"], "user_name": p.get("user_name"),
                          "why": p.get("origin", "annotation")})
    if rs_table is not None and len(rs_table):
        for item, group in rs_table.groupby("item"):
            kept = group[group["selected"]]
            if kept.empty:
                continue
            it = rs_items[item]
            best = kept.iloc[0]
            for row in group[~group["selected"]].itertuples():
                problems = _problems(row.reply, bool(it.get("unsafe", False)))
                if problems and not _problems(best.reply, bool(it.get("unsafe", False))):
                    pairs.append(_pair(it, best.reply, row.reply, "rs:" + "+".join(problems)))
                    break
            if cards is not None and best.following < 1.0:
                fixed = cards[it["character_id"]].enforce(best.reply, it.get("user_name"))
                if fixed.strip() and fixed.strip() != best.reply.strip():
                    pairs.append(_pair(it, fixed, best.reply, "rs:rule-fix"))
    # a patch for safety, style and the card's rules first; engagement pairs the panel agreed on fill what is left
    urgent = [p for p in pairs if p["why"] != "annotation" and not p["why"].startswith("logged-vs")
              and "-vs-" not in p["why"]]
    rest = [p for p in pairs if p not in urgent]
    taken = sample_in_order(urgent, max_pairs, seed, "dpo-pairs")
    return taken + sample_in_order(rest, max_pairs - len(taken), seed, "dpo-pairs-fill")


def run_patch(run, generation: int, rs_items: list[dict], rs_table, cards: dict, cfg, seed: int, *,
              consensus_agreement: float) -> list[dict]:
    """Notebook 05's patch (also `python -m kit train dpo`): from generation `generation`'s annotation training pairs
    and rejection sampling's prompts and candidates (kit.rejection.load_saved), at most cfg.dpo_max_pairs."""
    from .data import load_dataset_dir

    annotated = load_dataset_dir(run.artifact(generation, "annotation.train_pairs", create=False)).to_list()
    return patch_pairs(annotated, rs_items, rs_table, consensus_agreement=consensus_agreement,
                       max_pairs=cfg.dpo_max_pairs, seed=seed, cards=cards)


def _pair(item: dict, chosen: str, rejected: str, why: str) -> dict:
    return {"prompt": [{"role": m["role"], "content": m["content"]} for m in item["history"] if m["role"] != "system"],
            "chosen": [{"role": "assistant", "content": chosen}], "rejected": [{"role": "assistant", "content": rejected}],
            "character_id": item["character_id"], "user_name": item.get("user_name"), "why": why}


def rows(pairs: list[dict], cards: dict) -> list[dict]:
    return [{"prompt": cards[p["character_id"]].prompt(p["prompt"], p.get("user_name")),
             "chosen": [{"role": "assistant", "content": p["chosen"][0]["content"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"][0]["content"]}]} for p in pairs]


def dpo_config(out: str, seed: int, *, beta: float, lr: float, batch_size: int, epochs: float | None = None,
               max_steps: int | None = None, max_length: int = 768, schedule: str = "cosine", warmup: float = 0.0):
    from .models import choose_backend

    choose_backend(quiet=True)  # before TRL is bound: on its backend this imports Unsloth, which patches TRL
    from trl import DPOConfig

    return DPOConfig(beta=beta, loss_type=["sigmoid"], max_length=max_length,
                     **base_args(out, seed, batch_size=batch_size, epochs=epochs, lr=lr, max_steps=max_steps,
                                 schedule=schedule, warmup=warmup))


def train_dpo(model_name: str, start_adapter, pairs: list[dict], cards: dict, out_dir, cfg, seed: int) -> dict:
    """DPO on `pairs` starting from (and anchored to) the adapter at `start_adapter`. Saves one adapter."""
    from .models import choose_backend, load_policy

    choose_backend(quiet=True)  # before TRL is bound: on its backend this imports Unsloth, which patches TRL
    from datasets import Dataset
    from trl import DPOTrainer

    if not pairs:
        raise KitError("DPO: no preference pairs for the patch")
    if start_adapter is None:
        raise KitError("DPO: the patch starts from the SFT adapter; run notebook 04 first")
    model, tok = load_policy(model_name, start_adapter, trainable=True, max_seq_length=cfg.sft_max_length, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        args = dpo_config(tmp, seed, beta=cfg.dpo_beta, lr=cfg.dpo_lr, batch_size=min(cfg.sft_batch_size, 8),
                          epochs=cfg.dpo_epochs, max_length=cfg.sft_max_length)
        trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows(pairs, cards)),
                             processing_class=tok)
        reference = "adapter 'ref' (frozen copy of the SFT adapter)" if "ref" in trainer.model.peft_config else \
            "base model (adapters disabled)"
        trainer.train()
    backend = choose_backend(quiet=True)
    save_adapter(trainer.model, out_dir, {"stage": "dpo", "base_model": model_name, "start_adapter": str(start_adapter),
                                          "pairs": len(pairs), "reference": reference, "backend": backend.name,
                                          "seed": seed})
    curves = history(trainer, ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"))
    return {"pairs": len(pairs), "loss": losses(trainer), "curves": curves, "reference": reference,
            "backend": backend.name}
