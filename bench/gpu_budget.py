"""How long a flywheel generation takes at a profile, estimated from counts of its work and unit costs: the
calculation behind the gpu profile's size (README, Profiles).

    python bench/gpu_budget.py                  # cpu profile with this CPU's measured costs, gpu profile on a T4
    python bench/gpu_budget.py --t4-decode-step 0.02 --t4-train 9000   # again with figures bench/speed.py measured

Work per generation is counted from the profile (kit/config.py) stage by stage: replies generated (decoding
steps per batch plus prefill), tokens trained (forward + backward), tokens scored (forward only), and a fixed
cost per notebook (kernel start, imports, model loads). Unit costs:

* CPU (2 cores, float32): a decoding step of a 32-reply batch 0.36 s and prefill ~500 tokens/s (measured,
  README); LoRA training 200 tokens/s for the policy (top 10 layers) and 300 for reward models (top 4 layers,
  padding included), a notebook's fixed cost ~10 s and ~4 s per model it loads (fitted). With these the cpu
  profile's estimate meets runs/cpu7's measured stage times within about 30 % and its total within 10 %: the check
  that the counts of work are right.
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
# message 128, the reward models' brief + message 84; each earlier turn adds ~95 (user ~25, reply ~60, template).
PROMPT, BRIEF, TURN = 128, 84, 95
P_CONTINUE = 0.64         # share of replies after which a world user continues (README: 63.9 %)
CARDS = 14
LOADS = {"02_curation": 2, "03_reward_models": 6, "04_sft": 5, "05_dpo_rl": 5, "06_offline_eval": 4,
         "07_ab_test": 2}          # models loaded per notebook (policies, reward models, trainers)
MEASURED_CPU7 = {"02_curation": 145, "03_reward_models": 208, "04_sft": 258, "05_dpo_rl": 243, "06_offline_eval": 47,
                 "07_ab_test": 76}   # runs/cpu7, mean over its 3 generations (bench/results/stages.md)


def rates(device: str, a) -> dict:
    if device == "cpu":
        return dict(step=lambda batch: 0.36 * batch / 32, prefill=500.0, train_policy=200.0, train_rm=300.0,
                    score=500.0, notebook=10.0, load=4.0)
    return dict(step=lambda batch: a.t4_decode_step * max(1.0, batch / 128), prefill=a.t4_score,
                train_policy=a.t4_train, train_rm=a.t4_train, score=a.t4_score, notebook=a.t4_notebook, load=6.0)


def turns(max_turns: int) -> tuple[float, float]:
    """Expected replies per session, and the mean number of earlier turns before a reply."""
    w = [P_CONTINUE ** k for k in range(max_turns)]
    return sum(w), sum(k * x for k, x in enumerate(w)) / sum(w)


def generation_seconds(profile: str, r: dict) -> dict[str, float]:
    from kit.config import (ABConfig, CurationConfig, EvalConfig, PolicyConfig, RewardModelConfig, WorldConfig,
                            stage_config)

    w, c = stage_config(WorldConfig, profile), stage_config(CurationConfig, profile)
    m, p = stage_config(RewardModelConfig, profile), stage_config(PolicyConfig, profile)
    e, ab = stage_config(EvalConfig, profile), stage_config(ABConfig, profile)
    per_session, prior = turns(w.max_turns)
    reply = 0.6 * w.max_new_tokens                       # replies end before the limit on average
    prompt, brief = PROMPT + TURN * prior, BRIEF + TURN * prior
    scored = brief + reply

    def generate(n: float, batch: int, prompt_len: float, new: int) -> float:
        if n <= 0:
            return 0.0
        # a batch stops when its longest reply ends, most often before the limit
        return math.ceil(n / batch) * 0.85 * new * r["step"](min(batch, n)) + n * prompt_len / r["prefill"]

    sessions = w.n_sessions + w.n_internal_sessions
    traffic = sessions * per_session
    items = traffic * 0.77                               # after privacy, diversity (0.85) and constraints (0.9)
    train_items, eval_items = items * (1 - c.eval_fraction), items * c.eval_fraction
    annotated = min(c.max_annotated_prompts, train_items)
    annotated_eval = min(eval_items, max(c.max_annotated_prompts // 2, 1))
    steer = annotated * c.steer_share * 0.75             # user prompts that also get a rater's rewrite
    pairs_per_gen = 0.53 * annotated                     # cpu7: ~34 training pairs from 64 prompts
    eval_pairs = 0.6 * annotated_eval
    s = {"02_curation": generate(traffic + annotated + annotated_eval + steer, w.gen_batch_size, prompt,
                                 w.max_new_tokens) + sessions / 68.5}   # + MiniLM embedding on the CPU
    pairs = min(m.rm_max_pairs, 2 * pairs_per_gen) if m.rm_accumulate_labels else min(m.rm_max_pairs, pairs_per_gen)
    signals = min(m.rm_max_signal_examples, train_items)
    rm_tokens = m.rm_epochs * (pairs * 2 * scored + pairs * (scored + reply + 30) + 2 * signals * scored)
    s["03_reward_models"] = rm_tokens / r["train_rm"] + eval_pairs * 6 * scored / r["score"]
    rs = min(p.rs_max_prompts, train_items)
    candidates = rs * (len(p.rs_temperatures) + 1 + 2 / 3)   # + expert rewrite, + base model after generation 0
    sft_tokens = p.sft_epochs * (rs + 0.4 * pairs_per_gen) * (prompt + reply)
    held_out = min(p.policy_eval_prompts, eval_items)
    s["04_sft"] = (generate(candidates + 2 * held_out, p.gen_batch_size, prompt, p.max_new_tokens)
                   + (candidates + 2 * held_out) * scored / r["score"] + sft_tokens / r["train_policy"])
    dpo_pairs = min(p.dpo_max_pairs, 0.5 * (rs + pairs_per_gen))
    dpo_tokens = p.dpo_epochs * dpo_pairs * 2 * (prompt + reply) * 4 / 3     # + the reference's forward
    group = p.rl_prompts_per_step * p.rl_num_generations
    grpo = p.rl_steps * (generate(group, group, prompt, p.max_new_tokens)
                         + group * (prompt + reply) * 4 / 3 / r["train_policy"] + group * scored / r["score"])
    s["05_dpo_rl"] = (dpo_tokens / r["train_policy"] + grpo
                      + generate(2 * held_out, p.gen_batch_size, prompt, p.max_new_tokens)
                      + 2 * held_out * scored / r["score"])
    s["06_offline_eval"] = min(e.eval_prompts, eval_items) * 2 * 3 * (scored + reply) / r["score"]
    s["07_ab_test"] = (generate(CARDS * ab.ab_prompts_per_card * ab.ab_samples_per_prompt * 2, w.gen_batch_size,
                                prompt, w.max_new_tokens) + ab.ab_users / 20000 * (1 + ab.ab_reply_sims) * 0.5)
    return {k: v + r["notebook"] + LOADS[k] * r["load"] for k, v in s.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--t4-decode-step", type=float, default=0.025, help="seconds per decoding step, batch <= 128")
    ap.add_argument("--t4-train", type=float, default=8000.0, help="LoRA training tokens/s")
    ap.add_argument("--t4-score", type=float, default=24000.0, help="forward-only tokens/s (scoring, prefill)")
    ap.add_argument("--t4-notebook", type=float, default=45.0, help="fixed seconds per notebook")
    ap.add_argument("--generations", type=int, default=3)
    a = ap.parse_args()
    cpu = generation_seconds("cpu", rates("cpu", a))
    gpu = generation_seconds("gpu", rates("t4", a))
    print("| notebook | cpu profile, 2 CPU cores (estimate) | runs/cpu7 measured | gpu profile, T4 (estimate) |")
    print("| --- | ---: | ---: | ---: |")
    for k in cpu:
        print(f"| {k} | {cpu[k]:.0f} | {MEASURED_CPU7[k]} | {gpu[k]:.0f} |")
    once = {"cpu": 74.0 + 15, "t4": 45.0 + 45}          # 01_world and 08_flywheel, once per run
    total_cpu = a.generations * sum(cpu.values()) + once["cpu"]
    total_gpu = a.generations * sum(gpu.values()) + once["t4"]
    print(f"| **a generation** | **{sum(cpu.values()):.0f}** | **{sum(MEASURED_CPU7.values())}** | "
          f"**{sum(gpu.values()):.0f}** |")
    print(f"\n{a.generations} generations: cpu profile {total_cpu / 60:.0f} min on 2 cores (runs/cpu7: 51.4 min), "
          f"gpu profile {total_gpu / 60:.0f} min on a T4 (estimate)")


if __name__ == "__main__":
    main()
