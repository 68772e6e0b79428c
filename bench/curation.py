"""Curation throughput on this machine: conversations per second for each stage, at 10k conversations.

    python bench/curation.py [--n 10000] [--seed 0]

The conversations are built from data_samples/ without generating: fresh user messages from the world's bank
(typos, pushes off-card, fake personal data at the world's rate) around replies logged by the base model, so the
privacy filter, the embedder, clustering and stratified sampling all see realistic text. Prints a table and
writes bench/results/curation.json and .md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(n: int, seed: int) -> list[dict]:
    from kit.data import load_conversations
    from kit.paths import samples_dir
    from kit.seeding import rng
    from kit.world.prompts import user_message
    from kit.world.world import World

    world = World.build(seed, 300)
    base = load_conversations(samples_dir() / "conversations.jsonl")
    replies = [m["content"] for r in base for m in r["messages"] if m["role"] == "assistant"]
    r = rng(seed, "bench-curation")
    cards = list(world.cards.values())
    segments = list(world.params.segments) + ["internal"]
    out = []
    for k in range(n):
        card = cards[int(r.integers(len(cards)))]
        segment = segments[int(r.integers(len(segments)))]
        messages = []
        for turn in range(int(r.integers(1, 4))):
            msg = user_message(card, segment, turn, r, user_name="Sam", pii_rate=world.params.pii_rate,
                               typo_rate=world.params.typo_rate, unsafe_rate=world.params.unsafe_rate)
            messages += [{"role": "user", "content": msg["content"]},
                         {"role": "assistant", "content": replies[int(r.integers(len(replies)))]}]
        out.append({"conversation_id": f"b{k:06d}", "character_id": card.id,
                    "source": "internal" if segment == "internal" else "user", "user_name": "Sam", "messages": messages})
    return out, world


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from kit import curation
    from kit.config import CurationConfig, stage_config
    from kit.models import load_embedder
    from kit.privacy import filter_conversations

    records, world = build(args.n, args.seed)
    cfg = stage_config(CurationConfig, "cpu")
    embedder = load_embedder()
    embedder.encode(["warm up"])
    timings = {}

    t = time.perf_counter()
    clean, _ = filter_conversations(records)
    timings["1 privacy and safety"] = time.perf_counter() - t
    t = time.perf_counter()
    train_recs, eval_recs = curation.split_eval(clean, cfg.eval_fraction)
    items = curation.prompt_items(train_recs, world.cards)
    timings["held-out split + prompt items"] = time.perf_counter() - t
    t = time.perf_counter()
    emb = curation.embed_prompts(items, embedder)
    timings["2a diversity: embedding (MiniLM)"] = time.perf_counter() - t
    t = time.perf_counter()
    kept, _ = curation.diversity_prune(items, emb, threshold=cfg.prune_threshold, keep_fraction=cfg.keep_fraction,
                                       seed=args.seed)
    timings["2b diversity: k-means + pruning"] = time.perf_counter() - t
    diverse = [items[i] for i in kept]
    t = time.perf_counter()
    curation.stratified_sample(diverse, items, n_out=int(cfg.constraint_keep * len(diverse)), seed=args.seed)
    timings["3 constraints: stratified sampling"] = time.perf_counter() - t

    total = sum(timings.values())
    rows = [{"stage": k, "seconds": round(v, 2), "conversations_per_s": round(args.n / v, 1) if v else None,
             "share": round(v / total, 3)} for k, v in timings.items()]
    result = {"n_conversations": args.n, "prompts": len(items), "threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
              "total_seconds": round(total, 2), "conversations_per_s_overall": round(args.n / total, 1),
              "embedding_share": round((timings["2a diversity: embedding (MiniLM)"]) / total, 3), "stages": rows}
    lines = ["| stage | seconds | conversations/s | share |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['stage']} | {r['seconds']} | {r['conversations_per_s']} | {r['share']:.1%} |" for r in rows]
    lines.append(f"| **all** | {result['total_seconds']} | {result['conversations_per_s_overall']} | 100% |")
    md = (f"Curation on {args.n} conversations ({len(items)} prompts), {result['threads']} CPU threads, "
          f"{result['cpu']}; embedding share {result['embedding_share']:.1%}\n\n" + "\n".join(lines) + "\n")
    print(md)
    out = Path(__file__).resolve().parent / "results"
    from kit.paths import write_json, write_text

    write_json(out / "curation.json", result)
    write_text(out / "curation.md", md)


if __name__ == "__main__":
    main()
