"""Does more annotation make the pointwise reward model map the landscape? An experiment on a finished run.

Takes generation g's curated prompts and annotation from a run directory, adds `--rounds` more pool candidates
per prompt (each ranked against the logged reply by the simulated panel, as notebook 02 does), trains the
pointwise model on all the training pairs, and prints accuracy on the consensus and single-rater splits and the
Spearman correlation with the hidden utility. Nothing is written to the run directory.

    python bench/reward_data_volume.py --run-dir runs/cpu --rounds 2 --lr 5e-4 --epochs 1
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

from kit import annotation, rewards
from kit.config import CurationConfig, GenerationConfig, RewardModelConfig, WorldConfig, stage_config
from kit.data import load_dataset_dir
from kit.generation import Policy
from kit.paths import Run
from kit.world.world import World


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--generation", type=int, default=0)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2, help="extra pool candidates per prompt")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args()
    start = time.perf_counter()
    run, g = Run(args.run_dir), args.generation
    world = World.build(args.seed, stage_config(WorldConfig, args.profile).n_users)
    cur = stage_config(CurationConfig, args.profile)
    load = lambda stage, name: load_dataset_dir(run.stage(g, stage, name)).to_list()  # noqa: E731
    train, held = load("curation", "train_prompts"), load("curation", "eval_prompts")
    train_pairs, eval_pairs = load("annotation", "train_pairs"), load("annotation", "eval_pairs")
    policy = Policy.load(args.model, run.deployed(g)["adapter"], name=f"deployed@gen_{g}",
                         gen=stage_config(GenerationConfig, args.profile), seed=args.seed)
    for k in range(1, args.rounds + 1):
        cand, origins = annotation.candidate_pool(world, train + held, {"deployed": policy}, seed=100 + k,
                                                  temperature=cur.pool_temperature, rewrite_share=cur.rewrite_share)
        n = len(train)
        for items, c, o, key, out in ((train, cand[:n], origins[:n], f"train{k}", train_pairs),
                                      (held, cand[n:], origins[n:], f"eval{k}", eval_pairs)):
            out += annotation.annotate_pairs(world, items, c, o, n_raters=cur.n_raters, seed=100 + k, key=key,
                                             max_len_diff=cur.max_len_diff, max_emoji_diff=cur.max_emoji_diff,
                                             steerability=False)["pairs"]
    consensus = annotation.consensus_split(eval_pairs, cur.consensus_agreement)
    single = annotation.single_rater_view(eval_pairs)
    cfg = stage_config(RewardModelConfig, args.profile, rm_max_pairs=len(train_pairs), rm_lr=args.lr,
                       rm_epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        log = rewards.train_pointwise(args.model, train_pairs, world.cards, f"{tmp}/pointwise", cfg, args.seed)
        scorer = rewards.Scorer(f"{tmp}/pointwise")
        result = {"train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs), "consensus_pairs": len(consensus),
                  "consensus": rewards.pointwise_accuracy(scorer, consensus, world.cards, progress=False),
                  "single_rater": rewards.pointwise_accuracy(scorer, single, world.cards, progress=False),
                  "loss_first": log["loss"][:3], "loss_last": log["loss"][-3:]}
        _, rho, p = rewards.utility_alignment(world, scorer, eval_pairs, world.cards, progress=False)
    result.update(utility_spearman=rho, utility_spearman_p=p, seconds=round(time.perf_counter() - start, 1),
                  settings=vars(args))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
