"""Training and generation speed of the kit's path against plain Hugging Face, on the GPU (or the CPU).

    python bench/speed.py                                  # every task, shapes 135m,1b,8b on a GPU; 135m on a CPU
    python bench/speed.py --tasks sft --shapes 1b,8b --steps 12 --warmup 3
    python bench/speed.py --smoke                          # a 2-layer model, a few steps: checks the harness
    python bench/speed.py --short                          # sft, grpo, generate at 135m: minutes (scripts/gpu_check.sh)

Training tasks (sft, dpo, reward, grpo) run on randomly initialised Llama-architecture models built from a config
(shapes of SmolLM2-135M, Llama-3.2-1B, Llama-3-8B), so nothing is downloaded: batch `--batch` x `--seq` tokens,
LoRA r=16 (alpha 32) on every linear layer, gradient accumulation 1 asked for, the same data and settings on
every path, in the compute dtype the backend switch picks for the card (bfloat16 from compute capability 8.0 on,
float16 below). The random checkpoints are written tensor by tensor, so the 8B one never exists in full precision
(or at all) in memory; on a card under 24 GiB the 8b shape runs at batch 2, since a batch of 8 x 1024 tokens'
float32 logits over Llama-3's 128k vocabulary alone take 4 GiB on the plain path. Paths:

* `kit`: what the notebooks use: `kit.models.load_policy` / `load_classifier` through the backend switch (Unsloth
  4-bit QLoRA on a CUDA machine with Unsloth, NF4 + PEFT without it, float32 LoRA on a CPU) and the kit's
  trainer arguments (`kit.training.base_args`);
* `plain`: transformers + PEFT (+ bitsandbytes NF4 on a GPU) with the plain TRL trainer and TRL's defaults for
  gradient checkpointing;
* `unsloth`: raw Unsloth (`FastLanguageModel`) with the plain TRL trainer, on a GPU with Unsloth only: what the
  kit adds over raw Unsloth.

Each path runs in its own process (importing Unsloth patches transformers and TRL for the whole process). Tokens
are counted as processed: TRL's own `num_tokens` counter where the trainer logs it, otherwise the tokenised batch
lengths times the gradient-accumulation steps the trainer actually used (Unsloth may change it), read back from
the trainer. Throughput is the steady-state median over the steps after `--warmup`; peak memory is
`torch.cuda.max_memory_allocated`. `generate` measures batched generation with the embedded model: the kit's
`generate_replies` (left padding, length-sorted batches) against a plain `model.generate` loop.

Prints a table and writes bench/results/speed-<device>.json and .md with the device name, package versions and
every setting.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "smoke": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=49152, tie_word_embeddings=True),
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
}
TRAIN_TASKS = ("sft", "dpo", "reward", "grpo")
GRPO_COMPLETION = 128   # GRPO: prompts of seq/2 tokens, completions up to this many (generation is most of a step)
LORA = dict(r=16, alpha=32)


# ---------------------------------------------------------------------------------------------- models and data
def model_dir(shape: str, dtype: str, max_shard_bytes: int = 2 ** 30) -> Path:
    """A random-init Llama of `shape` in `dtype`, saved once with the embedded tokenizer.

    Written one tensor at a time from a skeleton on the meta device: building the model first would hold it whole,
    in float32 until cast (32 GB for 8B, more than a 16 GB card or a notebook machine's memory)."""
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from kit.models import load_tokenizer
    from kit.paths import atomic_path, cache_dir, write_json

    dest = cache_dir() / "bench" / f"llama-{shape}-{dtype}"
    if (dest / "config.json").exists():
        return dest
    cfg = LlamaConfig(**SHAPES[shape], max_position_embeddings=4096, rope_theta=500000.0, rms_norm_eps=1e-5)
    tok = load_tokenizer()
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    cfg.dtype = dtype
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(cfg)
    names = [n for n in skeleton.state_dict() if not (cfg.tie_word_embeddings and n == "lm_head.weight")]
    generator = torch.Generator().manual_seed(0)
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        parts, shard, size, total = [], {}, 0, 0   # parts: the names in each written shard, not its tensors

        def flush():
            parts.append(list(shard))
            save_file(shard, tmp / f"part-{len(parts)}.safetensors", metadata={"format": "pt"})
            shard.clear()

        for name in names:
            meta = skeleton.get_parameter(name)
            if name.endswith("norm.weight"):
                tensor = torch.ones(meta.shape, dtype=getattr(torch, dtype))
            else:   # Llama's initialisation: normal(0, initializer_range)
                tensor = torch.empty(meta.shape).normal_(0.0, cfg.initializer_range, generator=generator)
                tensor = tensor.to(getattr(torch, dtype))
            nbytes = tensor.numel() * tensor.element_size()
            if shard and size + nbytes > max_shard_bytes:
                flush()
                size = 0
            shard[name], size, total = tensor, size + nbytes, total + nbytes
        flush()
        weight_map = {}
        for i, part in enumerate(parts, 1):
            final = f"model-{i:05d}-of-{len(parts):05d}.safetensors"
            (tmp / f"part-{i}.safetensors").rename(tmp / final)
            weight_map.update({n: final for n in part})
        write_json(tmp / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
        cfg.save_pretrained(tmp)
        GenerationConfig.from_model_config(cfg).save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return dest


def words(n_tokens: int, seed: int) -> str:
    """About n_tokens tokens of random common words (the same text on every path)."""
    import random

    bank = ("the sea storm ship captain song star light night river stone garden tea cat dragon forest road "
            "city rain fire wind moon sun book letter friend story dance music smile heart dream home").split()
    r = random.Random(seed)
    return " ".join(r.choice(bank) for _ in range(n_tokens))


def sft_rows(n: int, seq: int, seed: int) -> list[dict]:
    import random

    r = random.Random(seed)
    return [{"input_ids": [r.randrange(200, 49000) for _ in range(seq)]} for _ in range(n)]


def pair_rows(n: int, seq: int, seed: int) -> list[dict]:
    half = seq // 2
    return [{"prompt": words(half, seed + 3 * i), "chosen": words(half - 2, seed + 3 * i + 1),
             "rejected": words(half - 2, seed + 3 * i + 2)} for i in range(n)]


# ---------------------------------------------------------------------------------------------- timing
def step_timer():
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self._t = [], [], None

        def _sync(self):
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def on_step_begin(self, args, state, control, **kw):
            self._sync()
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self._sync()
            self.times.append(time.perf_counter() - self._t)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                self.tokens.append((state.global_step, float(logs["num_tokens"])))

    return StepTimer()


def summarise(timer, warmup: int, fallback_tokens_per_step: float | None) -> dict:
    steady = timer.times[warmup:]
    if not steady:
        raise SystemExit(f"bench: only {len(timer.times)} steps ran; raise --steps above --warmup")
    counted = dict(timer.tokens)
    per_step = None
    if len(counted) > warmup + 1:
        steps = sorted(counted)
        per_step = (counted[steps[-1]] - counted[steps[warmup]]) / (steps[-1] - steps[warmup])
    source = "trl num_tokens" if per_step else "batch lengths x accumulation"
    per_step = per_step or fallback_tokens_per_step
    median = statistics.median(steady)
    return {"steps_timed": len(steady), "median_step_s": round(median, 4),
            "tokens_per_step": round(per_step, 1) if per_step else None,
            "tokens_per_s": round(per_step / median, 1) if per_step else None, "token_count": source}


# ---------------------------------------------------------------------------------------------- one path, one task
def load(path_name: str, directory: Path, seq: int, dtype: str, classifier: bool = False):
    """(model, tokenizer) for a path: kit (backend switch), plain (transformers + PEFT [+ NF4]), unsloth (raw).
    `dtype` is the compute dtype the kit's backend switch chose for this card (the kit path takes it from there)."""
    import torch

    from kit.models import LORA_TARGETS, LoraSettings, load_classifier, load_policy, prepare_tokenizer

    if path_name == "kit":
        if classifier:
            return load_classifier(str(directory), trainable=True, lora=LoraSettings(**LORA))
        return load_policy(str(directory), trainable=True, lora=LoraSettings(**LORA), max_seq_length=seq)
    if path_name == "unsloth":
        from unsloth import FastLanguageModel

        model, tok = FastLanguageModel.from_pretrained(model_name=str(directory), max_seq_length=seq,
                                                       load_in_4bit=True, dtype=getattr(torch, dtype))
        model = FastLanguageModel.get_peft_model(model, r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                                                 target_modules=LORA_TARGETS, use_gradient_checkpointing="unsloth")
        return model, prepare_tokenizer(tok, "right")
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                              BitsAndBytesConfig)

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(directory), "right")
    kw = {"dtype": getattr(torch, dtype)}
    if torch.cuda.is_available():
        kw.update(device_map={"": 0}, quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, dtype)))
    cls = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    model = cls.from_pretrained(directory, **({"num_labels": 1} if classifier else {}), **kw)
    if classifier:
        model.config.pad_token_id = tok.pad_token_id
    if torch.cuda.is_available():
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                                             target_modules=LORA_TARGETS,
                                             task_type="SEQ_CLS" if classifier else "CAUSAL_LM"))
    return model, tok


def trainer_args(path_name: str, batch: int, steps: int, out: str, dtype: str) -> dict:
    """The same settings on every path; the kit path takes them through kit.training.base_args. Mixed precision
    follows the model's dtype on every path: Unsloth's trainers refuse bf16 on a float16 model (a T4's)."""
    import torch

    common = dict(per_device_train_batch_size=batch, max_steps=steps, learning_rate=2e-4, logging_steps=1,
                  save_strategy="no", report_to=[], seed=0, gradient_accumulation_steps=1, disable_tqdm=True)
    if path_name == "kit":
        from kit.training import base_args

        args = base_args(out, 0, batch_size=batch, lr=2e-4, max_steps=steps)
        args.update(logging_steps=1)
        return args
    cuda = torch.cuda.is_available()
    return dict(common, output_dir=out, use_cpu=not cuda, bf16=cuda and dtype == "bfloat16",
                fp16=cuda and dtype == "float16")


def run_task(task: str, path_name: str, shape: str, directory: str, dtype: str, batch: int, seq: int, steps: int,
             warmup: int) -> dict:
    import torch

    timer = step_timer()
    total = warmup + steps
    fallback = None
    with tempfile.TemporaryDirectory() as out:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        model, tok = load(path_name, Path(directory), seq, dtype, classifier=task == "reward")
        args = trainer_args(path_name, batch, total, out, dtype)
        from datasets import Dataset

        if task == "sft":
            from trl import SFTConfig, SFTTrainer

            trainer = SFTTrainer(model=model, processing_class=tok, callbacks=[timer],
                                 train_dataset=Dataset.from_list(sft_rows(total * batch, seq, 0)),
                                 args=SFTConfig(max_length=seq, packing=False, **args))
        elif task == "dpo":
            from trl import DPOConfig, DPOTrainer

            trainer = DPOTrainer(model=model, processing_class=tok, callbacks=[timer],
                                 train_dataset=Dataset.from_list(pair_rows(total * batch, seq, 0)),
                                 args=DPOConfig(max_length=seq, **args))
            ds = trainer.train_dataset
            per_ex = statistics.mean(2 * len(p) + len(c) + len(r) for p, c, r in
                                     zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"]))
            fallback = per_ex * batch * trainer.args.gradient_accumulation_steps
        elif task == "reward":
            from trl import RewardConfig, RewardTrainer

            rows = [{"chosen": p["prompt"] + " " + p["chosen"], "rejected": p["prompt"] + " " + p["rejected"]}
                    for p in pair_rows(total * batch, seq, 0)]
            trainer = RewardTrainer(model=model, processing_class=tok, callbacks=[timer],
                                    train_dataset=Dataset.from_list(rows), args=RewardConfig(max_length=seq, **args))
        elif task == "grpo":
            from trl import GRPOConfig, GRPOTrainer

            def reward_len(completions, **kw):
                return [-abs(len(c.split()) - 20) / 20.0 for c in completions]

            n_gen = 4 if batch % 4 == 0 else 2
            rows = [{"prompt": words(seq // 2, i)} for i in range(total * batch)]
            trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=reward_len, callbacks=[timer],
                                  train_dataset=Dataset.from_list(rows),
                                  args=GRPOConfig(num_generations=n_gen, max_completion_length=GRPO_COMPLETION,
                                                  beta=0.04, loss_type="grpo", **args))
        else:
            raise SystemExit(f"bench: unknown training task {task!r}")
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        peak = torch.cuda.max_memory_allocated() / 2 ** 30 if torch.cuda.is_available() else None
        gas = trainer.args.gradient_accumulation_steps
    result = summarise(timer, warmup, fallback)
    backend = "unsloth" if path_name == "unsloth" else None
    if path_name == "kit":
        from kit.models import choose_backend

        backend = choose_backend(quiet=True).name
    return dict(result, task=task, path=path_name, shape=shape, batch=batch, seq=seq, gradient_accumulation=gas,
                peak_gib=round(peak, 2) if peak is not None else None, backend=backend or "plain")


def run_generate(path_name: str, n: int, new_tokens: int, batch: int) -> dict:
    """Replies per second and new tokens per second for the embedded model on world prompts."""
    import torch

    from kit.sampling import generate_replies
    from kit.models import load_policy
    from kit.world.world import World

    world = World.build(0, 100)
    cards = list(world.cards.values())
    convs = [cards[i % len(cards)].prompt([{"role": "user", "content": f"hey! what are you up to today? ({i})"}],
                                          "Sam") for i in range(n)]
    model, tok = load_policy()
    start = time.perf_counter()
    if path_name == "kit":
        from kit.sampling import GenerationStats

        stats = GenerationStats()
        generate_replies(model, tok, convs, max_new_tokens=new_tokens, batch_size=batch, progress=False, stats=stats)
        new = stats.new_tokens
    else:
        new = 0
        tok.padding_side = "left"
        texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in convs]
        for b in range(0, n, batch):
            enc = tok(texts[b:b + batch], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=True, temperature=0.8, top_p=0.95,
                                     pad_token_id=tok.pad_token_id)
            new += int((out[:, enc["input_ids"].shape[1]:] != tok.pad_token_id).sum())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"task": "generate", "path": path_name, "shape": "smollm2-135m (embedded)", "replies": n,
            "batch": batch, "max_new_tokens": new_tokens, "seconds": round(seconds, 2),
            "new_tokens_per_s": round(new / seconds, 1), "replies_per_s": round(n / seconds, 2)}


# ---------------------------------------------------------------------------------------------- driver
def worker(spec: dict) -> None:
    # Unsloth before anything binds transformers, PEFT or TRL, as in the kit: the kit path chooses its backend
    # first (which imports Unsloth on its backend), the unsloth path imports it; the plain path never does.
    if spec["path"] == "kit" or spec["task"] == "generate":
        from kit.models import choose_backend

        choose_backend(quiet=True)
    elif spec["path"] == "unsloth":
        import unsloth  # noqa: F401
    if spec["task"] == "generate":
        out = run_generate(spec["path"], spec["n"], spec["new_tokens"], spec["gen_batch"])
    else:
        out = run_task(spec["task"], spec["path"], spec["shape"], spec["directory"], spec["dtype"], spec["batch"],
                       spec["seq"], spec["steps"], spec["warmup"])
    print("BENCH_RESULT " + json.dumps(out), flush=True)


def run_in_subprocess(spec: dict, timeout: int) -> dict:
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(spec, error=f"timed out after {timeout} s")
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(spec, error=" | ".join(tail) or f"exit {proc.returncode}")


def table(results: list[dict]) -> str:
    lines = ["| task | shape | path | backend | tokens/s | median step s | peak GiB | grad. accum. | x plain |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    plain = {(r["task"], r["shape"]): r.get("tokens_per_s") or r.get("new_tokens_per_s")
             for r in results if r.get("path") == "plain" and "error" not in r}
    for r in results:
        if "error" in r:
            lines.append(f"| {r['task']} | {r.get('shape', '')} | {r['path']} | | error: {r['error'][:120]} | | | | |")
            continue
        speed = r.get("tokens_per_s") or r.get("new_tokens_per_s")
        ref = plain.get((r["task"], r["shape"]))
        ratio = f"{speed / ref:.2f}" if speed and ref else ""
        lines.append(f"| {r['task']} | {r['shape']} | {r['path']} | {r.get('backend', '')} | {speed} | "
                     f"{r.get('median_step_s', r.get('seconds', ''))} | {r.get('peak_gib') or ''} | "
                     f"{r.get('gradient_accumulation', '')} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--tasks", default="sft,dpo,reward,grpo,generate")
    ap.add_argument("--shapes", default=None, help="comma list of " + ", ".join(SHAPES))
    ap.add_argument("--paths", default=None, help="comma list of kit, plain, unsloth (default: all that apply)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10, help="timed steps after the warm-up")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gen-replies", type=int, default=512)
    ap.add_argument("--gen-batch", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=96)
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per task and path")
    ap.add_argument("--smoke", action="store_true", help="a 2-layer model, batch 2 x 64 tokens, 2+1 steps")
    ap.add_argument("--short", action="store_true",
                    help="sft, grpo, generate at 135m, batch 8 x 512, 2+3 steps, 256 replies (scripts/gpu_check.sh)")
    ap.add_argument("--name", default=None, help="results file name (default speed-<device>)")
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    import torch

    from kit.models import choose_backend

    cuda = torch.cuda.is_available()
    if args.smoke:
        args.shapes, args.batch, args.seq, args.steps, args.warmup = "smoke", 2, 64, 2, 1
        args.gen_replies, args.gen_batch, args.gen_tokens = 8, 4, 8
    if args.short:
        args.tasks, args.shapes, args.batch, args.seq = "sft,grpo,generate", "135m", 8, 512
        args.steps, args.warmup, args.gen_replies, args.timeout = 3, 2, 256, 240
    backend = choose_backend(quiet=True)   # the compute dtype for every path; imports Unsloth only in this parent
    shapes = (args.shapes or ("135m,1b,8b" if cuda else "135m")).split(",")
    paths = (args.paths or ("kit,plain,unsloth" if backend.name == "unsloth" else "kit,plain")).split(",")
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)"
    small_card = cuda and torch.cuda.get_device_properties(0).total_memory < 24 * 2 ** 30
    print(f"bench on {device} ({backend.dtype}); tasks {args.tasks}; shapes {shapes}; paths {paths}", flush=True)
    tasks = args.tasks.split(",")
    directories = {shape: str(model_dir(shape, backend.dtype)) for shape in shapes
                   if any(t in TRAIN_TASKS for t in tasks)}
    results = []
    for task in tasks:
        for shape in (shapes if task in TRAIN_TASKS else ["embedded"]):
            batch = min(args.batch, 2) if shape == "8b" and small_card else args.batch
            for path_name in paths:
                if task in ("generate", "reward") and path_name == "unsloth":
                    continue   # the kit, like Unsloth's fast path, keeps Unsloth to causal-LM training
                spec = dict(task=task, path=path_name, shape=shape, directory=directories.get(shape),
                            dtype=backend.dtype, batch=batch, seq=args.seq, steps=args.steps, warmup=args.warmup,
                            n=args.gen_replies, gen_batch=args.gen_batch, new_tokens=args.gen_tokens, cuda=cuda)
                r = run_in_subprocess(spec, args.timeout)
                print(json.dumps(r), flush=True)
                results.append(r)
    gen = (f"; generation: {args.gen_replies} replies, batch {args.gen_batch}, {args.gen_tokens} new tokens"
           if "generate" in args.tasks.split(",") else "")
    md = (f"Speed on {device}, {backend.dtype} (batch {args.batch} x {args.seq} tokens"
          f"{', 8b at batch 2' if small_card and '8b' in shapes else ''}, LoRA r={LORA['r']} on all linear layers, "
          f"{args.warmup} warm-up + {args.steps} timed steps{gen})\n\n" + table(results))
    print(md)
    from kit.paths import package_versions, write_json, write_text

    slug = device.split("(")[0].strip().lower().replace(" ", "-")
    name = args.name or ("speed-smoke" if args.smoke else f"speed-{slug}{'-short' if args.short else ''}")
    out = ROOT / "bench" / "results"
    write_json(out / f"{name}.json", {"device": device, "versions": package_versions(), "settings": vars(args),
                                      "lora": LORA, "results": results})
    write_text(out / f"{name}.md", md)


if __name__ == "__main__":
    main()
