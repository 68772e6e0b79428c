"""What online RL does to reply length, steerability and the hidden utility: variants of notebook 05's RL on one run.

On generation g of a finished run, every variant trains RL from the policy notebook 05's RL started from (the DPO
adapter, else the SFT adapter), on the prompts notebook 05 chooses and with the reward it builds (kit.rl.prompts,
kit.rl.rl_reward), then replies to the same held-out prompts with the same sampling seed. For each: mean words and
its change from the start policy, instruction following, violations, the reward RL optimised without the length
control (the same yardstick for every variant) and the hidden utility (which no trainer reads), each as a paired
difference against the start policy with a 95 % bootstrap interval, and the training time. A variant is a set of
PolicyConfig overrides, e.g. `rl_steps=8`, `rl_length_weight=2`, `rl_loss_type=dr_grpo`.

Nothing is written to the run directory (replies are cached in a temporary copy of its reply cache); results go to
bench/results/<name>.{json,md}.

    python bench/rl_variants.py --run-dir runs/cpu-seed2 --generation 0 \
        --variant default --variant rl_length_weight=2 --variant rl_length_weight=2,rl_steps=8
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sft_variants import arguments, diff, open_run, parse_variant, save   # noqa: E402  (bench/, beside this script)


def start_adapter(run, generation: int) -> Path:
    """Where notebook 05's RL started (kit.launch.rl_start), or a KitError naming the generation."""
    from kit.errors import KitError
    from kit.launch import rl_start

    start = rl_start(run, generation)
    if start is None:
        raise KitError(f"{run.gen(generation)}: no DPO or SFT adapter to start RL from (run notebooks 04 and 05 first)")
    return Path(start)


def main() -> None:
    args = arguments(__doc__, "rl_variants")

    from kit import evaluation, rejection, rl
    from kit.config import PolicyConfig, stage_config
    from kit.sampling import Policy
    from stages import device   # bench/stages.py: one description of the machine

    begin = time.perf_counter()
    r = open_run(args.run_dir)
    run, g, profile, seed, model = r.run, args.generation, r.profile, r.seed, r.model
    world, cards, gen_cfg, params = r.world, r.cards, r.gen_cfg, r.params
    start = start_adapter(run, g)
    rs_items, rs_table = rejection.load_saved(run, g)
    signal_weights = params.get("signal_weights")
    base_cfg = stage_config(PolicyConfig, profile)
    yardstick = rl.rl_reward(run, g, cards, rs_table, stage_config(PolicyConfig, profile, rl_length_weight=0.0),
                             signal_weights)
    variants = {v: parse_variant(v) for v in (args.variant or ["default"])}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "replies"
        shutil.copytree(run.reply_cache(), cache)          # the start policy's held-out replies, generated once
        held = evaluation.held_out(evaluation.held_out_items(run, g), base_cfg.policy_eval_prompts, seed)
        policies = {"start": Policy.load(model, start, name="start", seed=seed, gen=gen_cfg)}
        for name, overrides in variants.items():
            cfg = stage_config(PolicyConfig, profile, **overrides)
            items, _ = rl.prompts(rs_items, rs_table, cfg, seed)
            reward = rl.rl_reward(run, g, cards, rs_table, cfg, signal_weights)
            adapter = Path(tmp) / f"adapter-{len(policies)}"
            log = rl.train(model, start, items, cards, reward, adapter, cfg, seed)
            policies[name] = Policy.load(model, adapter, name=name, seed=seed, gen=gen_cfg)
            curves = log.get("curves", {})
            results[name] = {"overrides": overrides, "algorithm": log["algorithm"], "steps": log["steps"],
                             "train_seconds": round(log["seconds"], 1),
                             "length_control": log.get("length_control"),
                             "train_length_first_last": [curves["length"][0], curves["length"][-1]]
                             if curves.get("length") else None}
            print(name, results[name], flush=True)
        replies = evaluation.generate_for(policies, cards, held, seed=seed, cache=cache)
        check = evaluation.compare(cards, held, replies, reward_fn=yardstick, baseline="start", seed=seed,
                                   world=world)
    for name in results:
        results[name]["held_out"] = check[name]
    dev = device()
    result = {"run_dir": args.run_dir, "generation": g, "profile": profile, "seed": seed, "prompts": len(held),
              "start_adapter": str(start.relative_to(run.root)) if start.is_relative_to(run.root) else str(start),
              "start": check["start"], "variants": results, "seconds": round(time.perf_counter() - begin, 1),
              "device": f"{dev['cpu']}, {dev['cores']} cores",
              "command": "python " + " ".join(["bench/rl_variants.py"] + sys.argv[1:])}
    save(result, args.name, markdown(result))


def markdown(result: dict) -> str:
    s = result["start"]
    lines = [f"RL variants on `{result['run_dir']}` generation {result['generation']} (profile {result['profile']}, "
             f"seed {result['seed']}), from its `{result['start_adapter']}`: {result['prompts']} held-out prompts, "
             f"the same sampling seed for every policy ({result['device']}, {result['seconds']} s in all).",
             f"Command: `{result['command']}`", "",
             f"Start policy: {s['mean_words']:.1f} words, following {100 * s['instruction_following_rate']:.1f} %, "
             f"violations {100 * s['violation_rate']:.1f} %, hidden utility {s['hidden_utility']:+.3f}. "
             "The reward column is the RL reward without the length control, the same yardstick for every variant.",
             "", "| variant | steps | train s | words (vs start) | following vs start (pts) | violations | "
             "reward vs start | hidden utility vs start |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in result["variants"].items():
        h = r["held_out"]
        vs = h["vs_start"]
        change = 100 * (h["mean_words"] / s["mean_words"] - 1) if s["mean_words"] else float("nan")
        lines.append(f"| {name} | {r['steps']} | {r['train_seconds']} | {h['mean_words']:.1f} ({change:+.0f} %) | "
                     f"{diff(vs['following'], 100, 1)} | {100 * h['violation_rate']:.1f} % | {diff(vs['reward'])} | "
                     f"{diff(vs['hidden_utility'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
