"""Which reward model learns from the labels a CPU run can afford? Backbones compared on the same pairs.

On generation g's accumulated labels of a finished run (what notebook 03 trains on), every model is trained on the
same training pairs and measured on the same held-out splits: accuracy on the consensus and single-rater splits
(95 % Wilson intervals), the Spearman correlation of its score with the hidden utility on the held-out replies, and
its training time. The models:

1. the kit's embedding reward model (kit.rewards, `rm_backbone` a sentence encoder): frozen MiniLM, a linear
   Bradley-Terry head on [reply embedding, cos(message, reply), log(1 + reply tokens)];
2. the same with channels taken away, to show what each buys: the embedding alone, the embedding without the
   cosine, the embedding without the length, the two scalar channels alone;
3. the bar: a logistic regression on the replies' character n-gram TF-IDF (kit.rewards.ngram_baseline);
4. MiniLM fine-tuned in full with TRL's RewardTrainer (`--finetune-epochs`, 0 skips it): a cross-encoder on
   (card brief + the user's message, reply), mean pooling, a zero-initialised head given a higher learning rate;
5. the 135M policy-family classifier with LoRA and TRL's RewardTrainer (kit.rewards with rm_backbone="policy",
   the kit's default before; `--lm-epochs`, 0 skips it);
6. the label ceiling (kit.rewards.label_ceiling): the same regression on the world's own measured features,
   which no reward model sees.

A second table does the same for the 150 rater-labelled pairs of data_samples/preferences.jsonl with 3-fold
cross-validation (the embedding model, the n-gram bar, the ceiling): 100 training pairs a fold.

Nothing is written to the run directory; results go to bench/results/<name>.{json,md}.

    python bench/reward_backbones.py --run-dir runs/cpu-seed0 --generation 2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MINILM_CHANNELS = {   # which columns of the embedding features each ablation keeps (None: all)
    "embedding model (kit default)": None,
    "  embedding only": "emb",
    "  without cosine": "emb+len",
    "  without length": "emb+cos",
    "  cosine + length only": "cos+len",
}


def _columns(dim: int, which: str | None) -> np.ndarray:
    cols = {"emb": list(range(dim)), "cos": [dim], "len": [dim + 1]}
    keep = cols["emb"] + cols["cos"] + cols["len"] if which is None else sum((cols[k] for k in which.split("+")), [])
    return np.array(keep)


def _accuracy(chosen: np.ndarray, rejected: np.ndarray) -> dict:
    from kit.stats import wilson_ci

    wins = int(np.sum(np.asarray(chosen) > np.asarray(rejected)))
    n = len(chosen)
    return {"n": n, "accuracy": wins / n if n else None, "ci95": wilson_ci(wins, n)}


def _spearman(world, pairs: list[dict], score) -> tuple[float, float]:
    """Spearman of `score(items, replies)` with the average user's hidden utility over every held-out reply."""
    from scipy.stats import spearmanr

    from kit import rewards

    items = rewards._pair_items(pairs)
    replies = [p[k][0]["content"] for k in ("chosen", "rejected") for p in pairs]
    both = items + items
    truth = world.mean_user_utility(world.measure([dict(it, reply=r) for it, r in zip(both, replies)]))
    rho, p = spearmanr(score(both, replies), truth)
    return float(rho), float(p)


def embedding_models(world, train: list[dict], splits: dict[str, list[dict]], eval_pairs: list[dict], c: float,
                     backbone: str) -> dict:
    """The kit's embedding model and its ablations, on one set of frozen features."""
    from kit import rewards

    feat = rewards.Featurizer(backbone)
    items = rewards._pair_items(train)
    xc, _ = feat(items, [p["chosen"][0]["content"] for p in train])
    xr, _ = feat(items, [p["rejected"][0]["content"] for p in train])
    dim = xc.shape[1] - len(rewards.SCALAR_CHANNELS)
    out = {}
    for name, which in MINILM_CHANNELS.items():
        start = time.perf_counter()
        cols = _columns(dim, which)
        scale = rewards._channel_scale(np.vstack([xc, xr]))[cols]
        w = rewards.fit_difference_regression((xc - xr)[:, cols], scale, c=c).coef_[0] / scale
        score = lambda its, reps: feat(its, reps)[0][:, cols] @ w  # noqa: E731
        seconds = time.perf_counter() - start
        row = {"train_seconds": round(seconds, 2)}
        for split, pairs in splits.items():
            its = rewards._pair_items(pairs)
            row[split] = _accuracy(score(its, [p["chosen"][0]["content"] for p in pairs]),
                                   score(its, [p["rejected"][0]["content"] for p in pairs]))
        row["spearman"], row["spearman_p"] = _spearman(world, eval_pairs, score)
        out[name] = row
    return out


def finetuned_minilm(world, train, splits, eval_pairs, *, epochs: float, backbone: str, seed: int) -> dict:
    """MiniLM trained in full with TRL's RewardTrainer: (card brief + user message, reply) as a sentence pair, mean
    pooling over the tokens, a linear head started at zero and trained at 40x the encoder's learning rate (at the
    same rate it barely moves in a few dozen steps)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer, set_seed
    from transformers.modeling_outputs import SequenceClassifierOutput
    from trl import RewardConfig, RewardTrainer

    from kit import rewards
    from kit.models import resolve_embedder

    path = resolve_embedder(backbone)
    set_seed(seed)
    tok = AutoTokenizer.from_pretrained(path)

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path)
            self.config = self.encoder.config
            self.config.num_labels = 1
            self.head = torch.nn.Linear(self.config.hidden_size, 1)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def add_model_tags(self, tags):   # what TRL calls on a PreTrainedModel
            pass

        def forward(self, input_ids=None, attention_mask=None, **_):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).float()
            return SequenceClassifierOutput(logits=self.head((h * m).sum(1) / m.sum(1).clamp(min=1)))

    def encode(pairs, key):
        return [tok(f"{world.cards[p['character_id']].brief(p.get('user_name'))} {rewards._user_message(it)}",
                    p[key][0]["content"], truncation="only_first", max_length=256)["input_ids"]
                for p, it in zip(pairs, rewards._pair_items(pairs))]

    model = MeanPooled()
    ds = Dataset.from_dict({"chosen_ids": encode(train, "chosen"), "rejected_ids": encode(train, "rejected")})
    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("head")]
    opt = torch.optim.AdamW([{"params": body, "lr": 5e-5}, {"params": head, "lr": 2e-3}], weight_decay=0.01)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        args = RewardConfig(output_dir=tmp, per_device_train_batch_size=16, num_train_epochs=epochs,
                            learning_rate=5e-5, lr_scheduler_type="linear", warmup_steps=0.1, logging_steps=5,
                            save_strategy="no", report_to=[], seed=seed, use_cpu=True, disable_tqdm=True,
                            max_length=None, center_rewards_coefficient=0.01, gradient_checkpointing=False)
        RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, optimizers=(opt, None)).train()
    seconds = time.perf_counter() - start
    model.eval()

    def score_ids(ids):
        with torch.no_grad():
            out = []
            for b in range(0, len(ids), 32):
                batch = tok.pad({"input_ids": ids[b:b + 32]}, return_tensors="pt")
                out += model(**batch).logits[:, 0].tolist()
        return np.array(out)

    row = {"train_seconds": round(seconds, 1), "epochs": epochs}
    for split, pairs in splits.items():
        row[split] = _accuracy(score_ids(encode(pairs, "chosen")), score_ids(encode(pairs, "rejected")))

    def score(its, reps):
        fake = [{"character_id": it["character_id"], "user_name": it.get("user_name"), "prompt": it["history"],
                 "chosen": [{"content": r}]} for it, r in zip(its, reps)]
        return score_ids(encode(fake, "chosen"))

    row["spearman"], row["spearman_p"] = _spearman(world, eval_pairs, score)
    return row


def lm_classifier(world, train, splits, eval_pairs, *, epochs: float, profile: str, model: str, seed: int) -> dict:
    """The kit's causal-LM reward model (rm_backbone="policy": LoRA classifier, TRL RewardTrainer)."""
    from kit import rewards
    from kit.config import RewardModelConfig, stage_config

    cfg = stage_config(RewardModelConfig, profile, rm_backbone="policy", rm_epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        log = rewards.train_pointwise(model, train, world.cards, f"{tmp}/pointwise", cfg, seed)
        seconds = time.perf_counter() - start
        scorer = rewards.Scorer(f"{tmp}/pointwise")
        row = {"train_seconds": round(seconds, 1), "epochs": epochs, "steps": len(log["loss"]),
               "loss_first": log["loss"][0], "loss_last": log["loss"][-1]}
        for split, pairs in splits.items():
            acc = rewards.pointwise_accuracy(scorer, pairs, world.cards, progress=False)
            row[split] = {k: acc[k] for k in ("n", "accuracy", "ci95")}
        row["spearman"], row["spearman_p"] = _spearman(
            world, eval_pairs, lambda its, reps: scorer.score_replies(world.cards, its, reps, progress=False))
    return row


def sample_cross_validation(world, c: float, backbone: str) -> dict:
    """data_samples/preferences.jsonl, 3 folds: accuracy on held-out pairs and on their consensus subset."""
    from kit import rewards
    from kit.annotation import consensus_split
    from kit.data import load_preferences
    from kit.paths import samples_dir

    pairs = load_preferences(samples_dir() / "preferences.jsonl")
    folds = [pairs[k::3] for k in range(3)]
    tally = {m: {"held-out": [0, 0], "consensus": [0, 0]} for m in ("embedding model", "n-gram bar", "label ceiling")}
    for k in range(3):
        train = [p for j, f in enumerate(folds) if j != k for p in f]
        splits = {"held-out": folds[k], "consensus": consensus_split(folds[k], 0.8)}
        emb = embedding_models(world, train, splits, folds[k], c, backbone)["embedding model (kit default)"]
        results = {"embedding model": {s: emb[s] for s in splits},
                   "n-gram bar": rewards.ngram_baseline(train, splits),
                   "label ceiling": rewards.label_ceiling(world, train, splits)}
        for m, res in results.items():
            for s in splits:
                tally[m][s][0] += round(res[s]["accuracy"] * len(splits[s]))
                tally[m][s][1] += len(splits[s])
    return {m: {s: {"accuracy": w / n, "n": n} for s, (w, n) in d.items()} for m, d in tally.items()}


def markdown(result: dict) -> str:
    def cell(r):
        if not r or r.get("accuracy") is None:
            return ""
        return f"{100 * r['accuracy']:.1f} % [{100 * r['ci95'][0]:.0f}, {100 * r['ci95'][1]:.0f}]"

    lines = [f"Reward models on the labels of `{result['run_dir']}` generation {result['generation']}: "
             f"{result['train_pairs']} training pairs, {result['consensus_pairs']} consensus and "
             f"{result['single_pairs']} single-rater held-out pairs ({result['device']}, {result['seconds']} s).",
             f"Command: `{result['command']}`", "",
             "| model | consensus | single rater | Spearman with hidden utility | train s |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in result["models"].items():
        rho = f"{r['spearman']:+.2f} (p {r['spearman_p']:.2g})" if r.get("spearman") is not None else ""
        lines.append(f"| {name.strip() if not name.startswith('  ') else '&nbsp;&nbsp;' + name.strip()} | "
                     f"{cell(r.get('consensus'))} | {cell(r.get('single rater'))} | {rho} | "
                     f"{r.get('train_seconds', '')} |")
    lines += ["", "data_samples/preferences.jsonl (150 rater-labelled pairs), 3-fold cross-validation:", "",
              "| model | held-out pairs | consensus pairs |", "| --- | ---: | ---: |"]
    for name, r in result["samples_cv"].items():
        lines.append(f"| {name} | {100 * r['held-out']['accuracy']:.1f} % (n={r['held-out']['n']}) | "
                     f"{100 * r['consensus']['accuracy']:.1f} % (n={r['consensus']['n']}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--generation", type=int, required=True)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="the policy model (the causal-LM backbone)")
    ap.add_argument("--finetune-epochs", type=float, default=2.0, help="MiniLM trained in full; 0 skips it")
    ap.add_argument("--lm-epochs", type=float, default=1.0, help="the 135M LoRA classifier; 0 skips it")
    ap.add_argument("--name", default="reward_backbones", help="file name under bench/results/")
    args = ap.parse_args()

    from kit import rewards
    from kit.annotation import load_labels
    from kit.config import RewardModelConfig, WorldConfig, stage_config
    from kit.paths import Run, write_json, write_text
    from kit.seeding import sample_in_order
    from kit.world.world import World
    from stages import device   # bench/stages.py, beside this script: one description of the machine

    start = time.perf_counter()
    dev = device()
    run, g = Run(args.run_dir), args.generation
    world = World.build(args.seed, stage_config(WorldConfig, args.profile).n_users)
    cfg = stage_config(RewardModelConfig, args.profile)
    train = sample_in_order(load_labels(run, g, "train_pairs"), cfg.rm_max_pairs, args.seed, "cap", "pointwise")
    splits = {"consensus": load_labels(run, g, "eval_consensus"), "single rater": load_labels(run, g, "eval_single_rater")}
    eval_pairs = load_labels(run, g, "eval_pairs")

    models = embedding_models(world, train, splits, eval_pairs, cfg.rm_head_c, cfg.rm_backbone)
    base = rewards.ngram_baseline(train, splits)
    models["n-gram TF-IDF bar"] = {s: base[s] for s in splits}
    if args.finetune_epochs > 0:
        models["MiniLM trained in full (TRL RewardTrainer)"] = finetuned_minilm(
            world, train, splits, eval_pairs, epochs=args.finetune_epochs, backbone=cfg.rm_backbone, seed=args.seed)
    if args.lm_epochs > 0:
        models["135M LoRA classifier (TRL RewardTrainer)"] = lm_classifier(
            world, train, splits, eval_pairs, epochs=args.lm_epochs, profile=args.profile, model=args.model,
            seed=args.seed)
    ceiling = rewards.label_ceiling(world, train, splits)
    models["label ceiling (world features)"] = {s: ceiling[s] for s in splits}
    result = {"run_dir": args.run_dir, "generation": g, "train_pairs": len(train),
              "consensus_pairs": len(splits["consensus"]), "single_pairs": len(splits["single rater"]),
              "models": models, "samples_cv": sample_cross_validation(world, cfg.rm_head_c, cfg.rm_backbone),
              "seconds": round(time.perf_counter() - start, 1), "device": f"{dev['cpu']}, {dev['cores']} cores",
              "command": "python " + " ".join(["bench/reward_backbones.py"] + sys.argv[1:]), "settings": vars(args)}
    out = Path(__file__).resolve().parent / "results"
    write_json(out / f"{args.name}.json", result)
    md = markdown(result)
    write_text(out / f"{args.name}.md", md)
    print(md)


if __name__ == "__main__":
    main()
