"""Does the pointwise reward model generalise from a run's labels, or only fit them? An experiment on a finished run.

Notebook 03 reports the reward model on held-out splits only. This bench asks where the failure lies, on generation
g's accumulated labels (as notebook 03 trains on them):

1. the kit's pointwise reward model trained for `--epochs` at `--lr` (TRL RewardTrainer, the profile's LoRA):
   accuracy on its own training pairs next to the consensus and single-rater splits, and the Spearman correlation
   with the hidden utility. High training accuracy with held-out accuracy near 50 % means the labels are learned
   by heart, not generalised.
2. a frozen linear probe: the base model's last-token hidden state for each reply (no training of the backbone),
   a logistic regression on chosen-minus-rejected features, both orders, over a grid of L2 strengths. If no
   strength gets above chance held out, no head on this backbone can, from this many pairs.
3. the label ceiling (kit.rewards.label_ceiling) for reference: the same regression on the world's own measured
   features, which no reward model sees.

Nothing is written to the run directory; results go to bench/results/<name>.{json,md}.

    python bench/reward_generalisation.py --run-dir runs/cpu7 --generation 2 --epochs 3 --lr 1e-3 --batch-size 4
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

PROBE_C = (0.001, 0.01, 0.1, 1.0)


def hidden_differences(model, tok, cards, pairs: list[dict], max_length: int) -> np.ndarray:
    """Last-token hidden state of chosen minus rejected, one row per pair, from the frozen backbone."""
    import torch

    from kit import rewards

    rows = []
    for key in ("chosen", "rejected"):
        msgs = [rewards.reply_messages(cards[p["character_id"]], p["prompt"], p.get("user_name"), p[key][0]["content"])
                for p in pairs]
        feats = []
        with torch.no_grad():
            for ids in rewards._encode(tok, msgs, max_length):
                feats.append(model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].float().numpy())
        rows.append(np.array(feats))
    return rows[0] - rows[1]


def probe(x_train: np.ndarray, evals: dict[str, np.ndarray]) -> list[dict]:
    """kit.rewards.fit_difference_regression on the hidden-state differences, for each L2 strength."""
    from kit.rewards import fit_difference_regression

    scale = np.abs(x_train).mean(axis=0) + 1e-6
    out = []
    for c in PROBE_C:
        model = fit_difference_regression(x_train, scale, c=c)
        acc = {"train": float(np.mean(model.decision_function(x_train / scale) > 0))}
        acc.update({k: float(np.mean(model.decision_function(v / scale) > 0)) for k, v in evals.items() if len(v)})
        out.append({"C": c, "accuracy": acc})
    return out


def markdown(r: dict) -> str:
    rm, lines = r["reward_model"], []
    lines += [f"Pointwise reward model generalisation on **{r['run_dir']}**, generation {r['generation']} "
              f"({r['train_pairs']} training pairs, {r['consensus_pairs']} consensus, {r['single_pairs']} "
              f"single-rater; {r['seconds']:.0f} s on {r['device']})", "",
              f"Command: `{r['command']}`", "",
              "| model | train | consensus | single rater | Spearman with utility |",
              "| --- | ---: | ---: | ---: | ---: |",
              f"| reward model, {rm['epochs']:g} epochs at lr {rm['lr']:g}, batch {rm['batch_size']} "
              f"({rm['steps']} steps, loss {rm['loss_first']:.3f} -> {rm['loss_last']:.3f}) | {rm['train']:.1%} | "
              f"{rm['consensus']:.1%} | {rm['single']:.1%} | {rm['spearman']:+.3f} (p {rm['spearman_p']:.3f}) |"]
    for row in r["probe"]:
        a = row["accuracy"]
        held = " | ".join(f"{a[k]:.1%}" if k in a else "" for k in ("consensus", "single"))
        lines.append(f"| frozen last-token probe, C = {row['C']:g} | {a['train']:.1%} | {held} | |")
    ceil = r["label_ceiling"]
    lines.append(f"| label ceiling (world-measured features) | | {ceil['consensus']['accuracy']:.1%} | "
                 f"{ceil['single rater']['accuracy']:.1%} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--generation", type=int, default=0)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--name", default="reward_generalisation", help="file name under bench/results/")
    args = ap.parse_args()

    import sys

    from kit import rewards
    from kit.annotation import load_labels
    from kit.config import RewardModelConfig, WorldConfig, stage_config
    from kit.models import load_classifier
    from kit.paths import Run, write_json, write_text
    from kit.world.world import World
    from stages import device   # bench/stages.py, beside this script: one description of the machine

    start = time.perf_counter()
    dev = device()
    run, g = Run(args.run_dir), args.generation
    world = World.build(args.seed, stage_config(WorldConfig, args.profile).n_users)
    cards = world.cards
    cfg = stage_config(RewardModelConfig, args.profile, rm_epochs=args.epochs, rm_lr=args.lr,
                       rm_batch_size=args.batch_size)
    train = rewards.cap(load_labels(run, g, "train_pairs"), cfg.rm_max_pairs, args.seed, "pointwise")
    consensus, single = load_labels(run, g, "eval_consensus"), load_labels(run, g, "eval_single_rater")
    eval_pairs = load_labels(run, g, "eval_pairs")

    with tempfile.TemporaryDirectory() as tmp:
        log = rewards.train_pointwise(args.model, train, cards, f"{tmp}/pointwise", cfg, args.seed)
        scorer = rewards.Scorer(f"{tmp}/pointwise")
        acc = {name: rewards.pointwise_accuracy(scorer, pairs, cards, progress=False)["accuracy"]
               for name, pairs in (("train", train), ("consensus", consensus), ("single", single))}
        _, rho, p = rewards.utility_alignment(world, scorer, eval_pairs, cards, progress=False)
        del scorer
    rm = dict(acc, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, steps=len(log["loss"]),
              loss_first=log["loss"][0], loss_last=float(np.mean(log["loss"][-3:])), spearman=rho, spearman_p=p)

    model, tok = load_classifier(args.model)
    x = {name: hidden_differences(model, tok, cards, pairs, cfg.rm_max_length)
         for name, pairs in (("train", train), ("consensus", consensus), ("single", single))}
    result = {"run_dir": args.run_dir, "generation": g, "train_pairs": len(train), "consensus_pairs": len(consensus),
              "single_pairs": len(single), "reward_model": rm,
              "probe": probe(x["train"], {"consensus": x["consensus"], "single": x["single"]}),
              "label_ceiling": rewards.label_ceiling(world, train, {"consensus": consensus, "single rater": single}),
              "seconds": round(time.perf_counter() - start, 1), "device": f"{dev['cpu']}, {dev['cores']} cores",
              "command": "python " + " ".join(["bench/reward_generalisation.py"] + sys.argv[1:]),
              "settings": vars(args)}
    out = Path(__file__).resolve().parent / "results"
    write_json(out / f"{args.name}.json", result)
    md = markdown(result)
    write_text(out / f"{args.name}.md", md)
    print(md)


if __name__ == "__main__":
    main()
