"""What SFT does to reply length, steerability and the hidden utility: variants of notebook 04's SFT on one run.

On generation g of a finished run, every variant trains SFT from the base model on the same SFT set (rebuilt from
the run's saved rejection-sampling tables and rater rewrites, as notebook 04 builds it, for every generation up to g)
and replies to the same held-out prompts with the same sampling seed. For each: mean words, instruction following,
violation rate, the composite reward and the hidden utility (which no trainer reads), each as a paired difference
against the base model with a 95 % bootstrap interval, and the training time. A variant is a set of PolicyConfig
overrides, e.g. `sft_lr=3e-4`, `sft_max_steps=6`, `sft_open_ends=true`.

Nothing is written to the run directory (replies are cached in a temporary copy of its reply cache); results go to
bench/results/<name>.{json,md}.

    python bench/sft_variants.py --run-dir runs/lesson-off_policy --generation 0 \
        --variant default --variant sft_open_ends=true --variant sft_lr=3e-4
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_variant(text: str) -> dict:
    """'default' -> {}; 'a=1,b=true' -> {'a': 1, 'b': True} (values read as JSON, else as text)."""
    if text == "default":
        return {}
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def sft_set(run, generation: int, cards: dict, cfg, seed: int) -> list[dict]:
    """The SFT set notebook 04 trains generation `generation` on, rebuilt from the run's saved tables (so records
    carry every field the current kit gives them, `open_end` included)."""
    from kit import rejection
    from kit.data import load_dataset_dir

    records = []
    budget = rejection.target_budget(cfg)
    fix = cards if cfg.rs_rater_fix else None
    for g in (range(generation + 1) if cfg.sft_accumulate else [generation]):
        items, table = rejection.load_saved(run, g)
        records += rejection.sft_records(items, table, fix, max_words=budget)
        if cfg.sft_include_rewrites:
            pairs = load_dataset_dir(run.artifact(g, "annotation.train_pairs", create=False)).to_list()
            records += rejection.rewrite_records(pairs, fix, max_words=budget)
    return records


def arguments(doc: str, name: str) -> argparse.Namespace:
    """The command line every variants bench takes (this one and bench/rl_variants.py)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0], allow_abbrev=False)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--generation", type=int, required=True)
    ap.add_argument("--variant", action="append", default=None,
                    help="'default' or KEY=VALUE[,KEY=VALUE] PolicyConfig overrides (repeatable)")
    ap.add_argument("--name", default=name, help="file name under bench/results/")
    return ap.parse_args()


def open_run(run_dir: str):
    """A finished run as its notebooks saw it: the run, its recorded profile, seed and model, its world and cast,
    the generation settings."""
    from types import SimpleNamespace

    from kit.config import GenerationConfig, WorldConfig, stage_config
    from kit.launch import settings
    from kit.paths import Run
    from kit.world.world import World

    run = Run(run_dir)
    s = settings(run)   # what the run's notebooks ran with, as `python -m kit train` reads it
    profile, seed = s["profile"], int(s["seed"])
    world = World.from_config(stage_config(WorldConfig, profile), seed, s["notebook_parameters"].get("cards_dir"))
    return SimpleNamespace(run=run, params=run.manifest().get("parameters", {}), profile=profile, seed=seed,
                           model=s["model_name"], world=world, cards=world.cards,
                           gen_cfg=stage_config(GenerationConfig, profile))


def save(result: dict, name: str, md: str) -> None:
    """bench/results/<name>.{json,md}, and the table printed."""
    from kit.paths import write_json, write_text

    out = Path(__file__).resolve().parent / "results"
    write_json(out / f"{name}.json", result)
    write_text(out / f"{name}.md", md)
    print(md)


def main() -> None:
    args = arguments(__doc__, "sft_variants")

    from kit import evaluation, rewards, sft
    from kit.config import PolicyConfig, stage_config
    from kit.sampling import Policy
    from stages import device   # bench/stages.py, beside this script: one description of the machine

    start = time.perf_counter()
    r = open_run(args.run_dir)
    run, g, profile, seed, model = r.run, args.generation, r.profile, r.seed, r.model
    world, cards, gen_cfg = r.world, r.cards, r.gen_cfg
    reward_fn = rewards.load_composite_reward(run, g, cards, None)
    variants = {v: parse_variant(v) for v in (args.variant or ["default"])}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "replies"
        shutil.copytree(run.reply_cache(), cache)          # the base model's held-out replies, generated once
        n = stage_config(PolicyConfig, profile).policy_eval_prompts
        held = evaluation.held_out(evaluation.held_out_items(run, g), n, seed)
        policies = {"base": Policy.load(model, None, name="base", seed=seed, gen=gen_cfg)}
        for name, overrides in variants.items():
            cfg = stage_config(PolicyConfig, profile, **overrides)
            records = sft_set(run, g, cards, cfg, seed)
            adapter = Path(tmp) / f"adapter-{len(policies)}"
            log = sft.train_sft(model, records, cards, adapter, cfg, seed)
            policies[name] = Policy.load(model, adapter, name=name, seed=seed, gen=gen_cfg)
            results[name] = {"overrides": overrides, "examples": log["examples"], "steps": log["steps"],
                             "train_seconds": round(log["seconds"], 1), "loss_last": log["loss"][-1],
                             "open_end_share": sum(bool(r.get("open_end")) for r in records) / len(records),
                             "target_words": sum(len(r["completion"][0]["content"].split()) for r in records)
                             / len(records)}
            print(name, results[name], flush=True)
        replies = evaluation.generate_for(policies, cards, held, seed=seed, cache=cache)
        check = evaluation.compare(cards, held, replies, reward_fn=reward_fn, baseline="base", seed=seed, world=world)
    for name in results:
        results[name]["held_out"] = check[name]
    dev = device()
    result = {"run_dir": args.run_dir, "generation": g, "profile": profile, "seed": seed, "prompts": len(held),
              "base": check["base"], "variants": results, "seconds": round(time.perf_counter() - start, 1),
              "device": f"{dev['cpu']}, {dev['cores']} cores",
              "command": "python " + " ".join(["bench/sft_variants.py"] + sys.argv[1:])}
    save(result, args.name, markdown(result))


def diff(d: dict, scale: float = 1.0, digits: int = 2) -> str:
    """A paired difference with its 95 % interval, e.g. '+0.33 [+0.05, +0.63]'."""
    f = f"{{:+.{digits}f}}"
    return f"{f.format(scale * d['diff'])} [{f.format(scale * d['ci95'][0])}, {f.format(scale * d['ci95'][1])}]"


def markdown(result: dict) -> str:
    b = result["base"]
    lines = [f"SFT variants on `{result['run_dir']}` generation {result['generation']} (profile {result['profile']}, "
             f"seed {result['seed']}): {result['prompts']} held-out prompts, the same sampling seed for every policy "
             f"({result['device']}, {result['seconds']} s in all).", f"Command: `{result['command']}`", "",
             f"Base model: {b['mean_words']:.1f} words, following {100 * b['instruction_following_rate']:.1f} %, "
             f"violations {100 * b['violation_rate']:.1f} %, hidden utility {b['hidden_utility']:+.3f}.", "",
             "| variant | SFT rows (open-ended) | target words | steps | train s | words | following vs base (pts) | "
             "violations | reward vs base | hidden utility vs base |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in result["variants"].items():
        h = r["held_out"]
        vs = h["vs_base"]
        lines.append(f"| {name} | {r['examples']} ({100 * r['open_end_share']:.0f} %) | {r['target_words']:.1f} | "
                     f"{r['steps']} | {r['train_seconds']} | {h['mean_words']:.1f} | {diff(vs['following'], 100, 1)} | "
                     f"{100 * h['violation_rate']:.1f} % | {diff(vs['reward'])} | {diff(vs['hidden_utility'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
