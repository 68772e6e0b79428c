"""How long a flywheel generation takes at a profile, estimated from counts of its work and unit costs: the
calculation behind the gpu profile's size (README, Profiles).

    python bench/gpu_budget.py                  # cpu profile with this CPU's measured costs, gpu profile on a T4
    python bench/gpu_budget.py --t4-decode-step 0.02 --t4-train 9000   # again with figures bench/speed.py measured

Work per generation is counted from the profile (kit/config.py) stage by stage: replies generated (decoding
steps per batch plus prefill), tokens trained (forward + backward), tokens scored (forward only), and a fixed
cost per notebook (kernel start, imports, model loads). Unit costs:

* CPU (2 cores, float32): a decoding step of a 32-reply batch 0.36 s and prefill ~500 tokens/s (measured); LoRA
  training ~310 tokens/s for the policy (top 10 layers; notebook 04's own log: 311 in the seed-0 cpu run), MiniLM embedding ~2,000 tokens/s,
  a notebook's fixed cost ~12 s and ~4 s per model it loads. The cpu estimate is set beside the cpu runs committed
  in bench/results/stages.json: the check that the counts of work are right.
* T4 (16 GB, float16), not measured yet: the figures scripts/gpu_check.sh's bench replaces. Its published peak is
  65 TFLOPS float16 on tensor cores and 320 GB/s. Training a 135M model with LoRA on every layer and gradient
  checkpointing costs ~1 GFLOP per token; at ~12 % of peak (small 576-wide matrices, 4-bit dequantisation) that
  is ~8,000 tokens/s, and a forward-only scoring pass ~3x that. Decoding a 135M model is launch-bound, not
  compute-bound: ~1,000 kernel launches per step (30 layers) at 15-25 us each, so ~25 ms per step whatever the
  batch up to 128 (which costs 35 GFLOP, 1 ms of compute). A notebook's fixed cost is ~45 s (Unsloth's import
  and its trainer compilation) and ~6 s per model it loads (4-bit quantisation on load).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Token lengths measured with the embedded tokenizer on the world's cards: a card's system prompt + one user
# message ~170, each earlier turn adds ~95 (user ~25, reply ~60, template).
PROMPT, TURN = 170, 95
P_CONTINUE = 0.64         # share of replies after which a world user continues (README: 63.9 %)
CARDS = 14
LOADS = {"02_curation": 2, "03_reward_models": 1, "04_sft": 4, "05_dpo_rl": 5, "06_offline_eval": 3,
         "07_ab_test": 2}          # models loaded per notebook (policies, trainers; the embedder counts as one)
STAGES_JSON = Path(__file__).resolve().parent / "results" / "stages.json"


def rates(device: str, a) -> dict:
    if device == "cpu":
        return dict(step=lambda batch: 0.36 * batch / 32, prefill=500.0, train_policy=310.0, embed=2000.0,
                    notebook=12.0, load=4.0)
    return dict(step=lambda batch: a.t4_decode_step * max(1.0, batch / 128), prefill=a.t4_score,
                train_policy=a.t4_train, embed=a.t4_score * 4, notebook=a.t4_notebook, load=6.0)


def turns(max_turns: int) -> tuple[float, float]:
    """Expected replies per session, and the mean number of earlier turns before a reply."""
    w = [P_CONTINUE ** k for k in range(max_turns)]
    return sum(w), sum(k * x for k, x in enumerate(w)) / sum(w)


def generation_seconds(profile: str, r: dict, generation: int = 1) -> dict[str, float]:
    """Seconds per notebook of one generation (`generation` 0 also generates the base model's held-out and A/B
    replies, which later generations read from the run's reply cache)."""
    from kit.config import (ABConfig, CurationConfig, EvalConfig, PolicyConfig, RewardModelConfig, WorldConfig,
                            stage_config)

    w, c = stage_config(WorldConfig, profile), stage_config(CurationConfig, profile)
    m, p = stage_config(RewardModelConfig, profile), stage_config(PolicyConfig, profile)
    e, ab = stage_config(EvalConfig, profile), stage_config(ABConfig, profile)
    per_session, prior = turns(w.max_turns)
    reply = 0.8 * w.max_new_tokens                       # replies mostly run close to the limit
    prompt = PROMPT + TURN * prior

    def generate(n: float, batch: int, new: int) -> float:
        if n <= 0:
            return 0.0
        # a batch stops when its longest reply ends, most often at the limit
        return math.ceil(n / batch) * 0.95 * new * r["step"](min(batch, n)) + n * prompt / r["prefill"]

    sessions = w.n_sessions + w.n_internal_sessions
    traffic = sessions * per_session
    train_items = traffic * (1 - c.eval_fraction) * 0.77   # after privacy, diversity (0.85) and constraints (0.9)
    eval_items = traffic * c.eval_fraction
    annotated = min(c.max_annotated_prompts, train_items)
    annotated_eval = min(eval_items, c.max_annotated_eval_prompts or max(c.max_annotated_prompts // 2, 1))
    candidates = annotated * c.candidates_per_prompt + annotated_eval * c.eval_candidates_per_prompt
    steer = annotated * c.steer_share * 0.3              # prompts whose every candidate breaks the card
    s = {"02_curation": generate(traffic + candidates + steer, w.gen_batch_size, w.max_new_tokens)
         + (traffic + candidates) * 2 * (prompt + reply) / r["embed"]}   # MiniLM: curation, measuring
    k = c.candidates_per_prompt + 1
    pairs = (generation + 1) * annotated * k * (k - 1) / 2 * 0.9        # labels accumulate
    texts = 2 * min(m.rm_max_pairs, pairs) + 6 * annotated_eval + min(m.rm_max_signal_examples, train_items)
    s["03_reward_models"] = texts * (reply + 20) / r["embed"]
    held_out = min(p.policy_eval_prompts, eval_items)
    rows = min(p.rs_max_prompts, annotated) * (1.3 if p.sft_include_rewrites else 1.0)
    sft_set = rows * ((generation + 1) if p.sft_accumulate else 1)
    steps = math.ceil(p.sft_epochs * math.ceil(sft_set / p.sft_batch_size))
    steps = min(steps, p.sft_max_steps) if p.sft_max_steps else steps
    base_replies = held_out if generation == 0 else 0
    s["04_sft"] = (steps * p.sft_batch_size * (prompt + reply) / r["train_policy"]
                   + generate(held_out + base_replies, p.gen_batch_size, p.max_new_tokens))
    dpo_steps = math.ceil(p.dpo_epochs * math.ceil(p.dpo_max_pairs / min(p.sft_batch_size, 8)))
    dpo_tokens = dpo_steps * min(p.sft_batch_size, 8) * 2 * (prompt + reply) * 4 / 3   # + the reference's forward
    group = p.rl_prompts_per_step * p.rl_num_generations
    grpo = p.rl_steps * (generate(group, group, p.max_new_tokens) + group * (prompt + reply) * 4 / 3 / r["train_policy"])
    s["05_dpo_rl"] = dpo_tokens / r["train_policy"] + grpo + generate(2 * held_out, p.gen_batch_size, p.max_new_tokens)
    s["06_offline_eval"] = min(e.eval_prompts, eval_items) * 3 * 3 * (reply + 20) / r["embed"]
    arms = 2 if generation == 0 else 1                   # the control's replies come from the run's reply cache
    s["07_ab_test"] = (generate(CARDS * ab.ab_prompts_per_card * ab.ab_samples_per_prompt * arms, w.gen_batch_size,
                                w.max_new_tokens) + ab.ab_users / 20000 * (1 + ab.ab_reply_sims) * 0.8)
    return {k: v + r["notebook"] + LOADS[k] * r["load"] for k, v in s.items()}


def measured_cpu() -> dict | None:
    """Mean seconds per notebook over the generations of the cpu runs committed in bench/results/stages.json."""
    import json

    if not STAGES_JSON.exists():
        return None
    runs = [t for t in json.loads(STAGES_JSON.read_text())["runs"] if t.get("profile") == "cpu"]
    if not runs:
        return None
    out = {}
    for name in LOADS:
        values = [v for t in runs for v in t["stages"].get(name, {}).values()]
        out[name] = sum(values) / len(values) if values else float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--t4-decode-step", type=float, default=0.025, help="seconds per decoding step, batch <= 128")
    ap.add_argument("--t4-train", type=float, default=8000.0, help="LoRA training tokens/s")
    ap.add_argument("--t4-score", type=float, default=24000.0, help="forward-only tokens/s (scoring, prefill)")
    ap.add_argument("--t4-notebook", type=float, default=45.0, help="fixed seconds per notebook")
    ap.add_argument("--generations", type=int, default=3)
    a = ap.parse_args()
    n = a.generations
    cpu = [generation_seconds("cpu", rates("cpu", a), g) for g in range(n)]
    gpu = [generation_seconds("gpu", rates("t4", a), g) for g in range(n)]
    measured = measured_cpu() or {}
    print("| notebook (mean over generations) | cpu profile, 2 CPU cores (estimate) | cpu runs measured "
          "(bench/results/stages.json) | gpu profile, T4 (estimate) |")
    print("| --- | ---: | ---: | ---: |")
    for k in cpu[0]:
        est, est_gpu = sum(g[k] for g in cpu) / n, sum(g[k] for g in gpu) / n
        print(f"| {k} | {est:.0f} | {measured.get(k, float('nan')):.0f} | {est_gpu:.0f} |")
    once = {"cpu": 100.0 + 15, "t4": 45.0 + 45}          # 01_world and 08_flywheel, once per run
    total_cpu = sum(sum(g.values()) for g in cpu) + once["cpu"]
    total_gpu = sum(sum(g.values()) for g in gpu) + once["t4"]
    print(f"| **a generation** | **{total_cpu / n:.0f}** | **{sum(measured.values()):.0f}** | "
          f"**{total_gpu / n:.0f}** |")
    print(f"\n{n} generations: cpu profile {total_cpu / 60:.0f} min on 2 cores (estimate), "
          f"gpu profile {total_gpu / 60:.0f} min on a T4 (estimate)")


if __name__ == "__main__":
    main()
