"""Curation stages 2 and 3 (step 1 of the method), and the held-out split (stage 1, privacy and safety, is
kit/privacy.py).

* Prompt items: every assistant turn of a conversation becomes a prompt (the history up to the user's message)
  with the reply that was logged and the user's signals.
* Held-out split: conversations are assigned to evaluation by a stable hash of their opening (character + first
  user message, normalised), so every turn of a conversation, and every conversation that opens the same way,
  falls on one side. `assert_disjoint` checks it on every run.
* Diversity: prompts are embedded (sentence-transformers), clustered (k-means), near-duplicates within a cluster
  pruned (cosine above a threshold), and a set fraction kept, spread evenly over clusters.
* Constraints: stratified sampling so that the monitored dimensions (category, source, turn depth, length bucket)
  match the original traffic's distribution, or chosen targets (iterative proportional fitting of the joint).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .data import SIGNALS, SOURCES
from .errors import KitError, ParameterError
from .seeding import rng, stable_hash
from .world.characters import CATEGORIES

DIMENSIONS = ("category", "source", "turn_depth", "length_bucket")
# The values each monitored dimension takes (prompt_items below): a target naming another value matches nothing.
DIMENSION_VALUES = {"category": CATEGORIES, "source": SOURCES, "turn_depth": ("1", "2", "3+"),
                    "length_bucket": ("short", "medium", "long")}


def check_targets(targets, dims=DIMENSIONS, values: dict | None = DIMENSION_VALUES) -> None:
    """Constraint targets {dimension: {value: share}}: known dimensions (and values, unless `values` is None),
    shares in [0, 1] that add up to 1. A ParameterError names the first that is not."""
    if targets is None:
        return
    if not isinstance(targets, dict):
        raise ParameterError("constraint_targets", "a mapping {dimension: {value: share}}", targets)
    for d, shares in targets.items():
        if d not in dims:
            raise ParameterError("constraint_targets", f"dimensions among {', '.join(dims)}", d)
        if not isinstance(shares, dict) or not shares:
            raise ParameterError(f"constraint_targets.{d}", "a mapping {value: share}", shares)
        for value, share in shares.items():
            if values is not None and value not in values[d]:
                raise ParameterError(f"constraint_targets.{d}", f"values among {', '.join(values[d])}", value)
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                raise ParameterError(f"constraint_targets.{d}.{value}", "a share in [0, 1]", share)
        if abs(sum(shares.values()) - 1.0) > 1e-6:
            raise ParameterError(f"constraint_targets.{d}", "shares that add up to 1", shares)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()


def opening_key(record: dict) -> str:
    first = next((m["content"] for m in record["messages"] if m["role"] == "user"), "")
    return f"{record['character_id']}|{_norm(first)}"


def prompt_key(item: dict) -> str:
    """What makes two prompts the same prompt: the character and the whole history, normalised."""
    return item["character_id"] + "|" + " / ".join(f"{m['role']}:{_norm(m['content'])}" for m in item["history"])


def is_eval(record: dict, eval_fraction: float) -> bool:
    return stable_hash("eval-split|" + opening_key(record), 10_000) < eval_fraction * 10_000


def prompt_items(records: list[dict], cards: dict) -> list[dict]:
    """Flatten conversations into prompt items. The world's hidden fields are not copied."""
    out = []
    for rec in records:
        card = cards.get(rec["character_id"])
        if card is None:
            raise KitError(f"conversation {rec['conversation_id']}: unknown character_id {rec['character_id']!r}; "
                           f"known: {', '.join(sorted(cards))}")
        turn = 0
        for k, m in enumerate(rec["messages"]):
            if m["role"] != "assistant":
                continue
            history = [{"role": h["role"], "content": h["content"]} for h in rec["messages"][:k] if h["role"] != "system"]
            if not history or history[-1]["role"] != "user":
                continue
            user_message = history[-1]["content"]
            n_words = len(user_message.split())
            item = dict(conversation_id=rec["conversation_id"], character_id=rec["character_id"],
                        category=card.category, source=rec["source"], user_id=rec.get("user_id"),
                        user_name=rec.get("user_name"), day=rec.get("day", 0), turn=turn, history=history,
                        user_message=user_message, reply=m["content"],
                        signals={k: m.get("signals", {}).get(k) for k in SIGNALS},
                        turn_depth="1" if turn == 0 else ("2" if turn == 1 else "3+"),
                        length_bucket="short" if n_words < 6 else ("medium" if n_words <= 15 else "long"))
            item["prompt_id"] = f"p{stable_hash(prompt_key(item)):010d}"
            out.append(item)
            turn += 1
    return out


def split_eval(records: list[dict], eval_fraction: float) -> tuple[list[dict], list[dict]]:
    if not 0.0 < eval_fraction < 1.0:
        raise ParameterError("eval_fraction", "a number strictly between 0 and 1", eval_fraction)
    train = [r for r in records if not is_eval(r, eval_fraction)]
    held = [r for r in records if is_eval(r, eval_fraction)]
    return train, held


def assert_disjoint(eval_items: list[dict], *train_sets: list[dict], names: tuple[str, ...] = ()) -> dict:
    """Raise if any evaluation prompt (by prompt key or by opening) appears in a training set."""
    eval_keys = {prompt_key(i) for i in eval_items}
    eval_openings = {(i["character_id"], _norm(i["history"][0]["content"])) for i in eval_items if i["history"]}
    report = {}
    for k, train in enumerate(train_sets):
        name = names[k] if k < len(names) else f"train_set_{k}"
        clash = [i for i in train if prompt_key(i) in eval_keys or
                 (i["history"] and (i["character_id"], _norm(i["history"][0]["content"])) in eval_openings)]
        if clash:
            raise KitError(f"{name}: {len(clash)} prompt(s) also in the evaluation set, e.g. "
                           f"{clash[0]['user_message'][:60]!r}; evaluation prompts must stay out of training")
        report[name] = len(train)
    report["eval"] = len(eval_items)
    return report


# ---------------------------------------------------------------------------------------------- diversity
def embed_prompts(items: list[dict], embedder, batch_size: int = 128) -> np.ndarray:
    """One unit vector per prompt: the character's id and the last two messages of the history."""
    texts = [f"{it['character_id']}: " + " / ".join(m["content"] for m in it["history"][-2:]) for it in items]
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)


def diversity_prune(items: list[dict], emb: np.ndarray, *, threshold: float, keep_fraction: float, seed: int,
                    n_clusters: int | None = None) -> tuple[list[int], dict]:
    """Indices of the prompts kept. Near-duplicates (cosine >= threshold to a kept prompt of the same cluster) go
    first; then, if more than keep_fraction remain, clusters are drawn from in turn so small ones survive."""
    from sklearn.cluster import KMeans

    if not 0.0 < keep_fraction <= 1.0:
        raise ParameterError("keep_fraction", "a number in (0, 1]", keep_fraction)
    if not 0.0 < threshold <= 1.0:
        raise ParameterError("prune_threshold", "a cosine similarity in (0, 1]", threshold)
    n = len(items)
    if n == 0:
        return [], {"clusters": 0, "near_duplicates": 0, "kept": 0, "kept_fraction": 0.0}
    k = n_clusters or max(1, min(n, int(round(np.sqrt(n)))))
    labels = KMeans(n_clusters=k, n_init=3, random_state=int(rng(seed, "kmeans").integers(2**31))).fit_predict(emb)
    order = rng(seed, "diversity-order").permutation(n)
    kept_by_cluster: dict[int, list[int]] = {}
    dropped = 0
    for i in order:
        c = int(labels[i])
        kept = kept_by_cluster.setdefault(c, [])
        if kept and float(np.max(emb[kept] @ emb[i])) >= threshold:
            dropped += 1
            continue
        kept.append(int(i))
    target = max(1, int(round(keep_fraction * n)))
    survivors = sum(len(v) for v in kept_by_cluster.values())
    if survivors > target:
        queues = [list(v) for _, v in sorted(kept_by_cluster.items())]
        chosen: list[int] = []
        while len(chosen) < target:
            for q in queues:
                if q and len(chosen) < target:
                    chosen.append(q.pop(0))
    else:
        chosen = [i for v in kept_by_cluster.values() for i in v]
    chosen.sort()
    return chosen, {"clusters": k, "near_duplicates": dropped, "kept": len(chosen), "kept_fraction": len(chosen) / n,
                    "labels": labels.tolist()}


def projection_2d(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D PCA projection of the embeddings, for the before/after plot."""
    from sklearn.decomposition import PCA

    if len(emb) < 2:
        return np.zeros((len(emb), 2))
    return PCA(n_components=2, random_state=seed).fit_transform(emb)


# ---------------------------------------------------------------------------------------------- constraints
def distribution(items: list[dict], dims=DIMENSIONS) -> pd.DataFrame:
    """Share of items per value, for each monitored dimension (long format: dimension, value, share)."""
    df = pd.DataFrame([{d: it[d] for d in dims} for it in items])
    rows = []
    for d in dims:
        if len(df):
            for value, share in df[d].value_counts(normalize=True).sort_index().items():
                rows.append({"dimension": d, "value": value, "share": float(share)})
    return pd.DataFrame(rows, columns=["dimension", "value", "share"])


def _ipf(joint: pd.Series, targets: dict[str, dict], dims, iterations: int = 20) -> pd.Series:
    """Reweight a joint distribution so its marginals match `targets` (iterative proportional fitting)."""
    w = joint.copy()
    for _ in range(iterations):
        for d, target in targets.items():
            level = dims.index(d)
            marg = w.groupby(level=level).sum()
            scale = {v: (target.get(v, 0.0) / marg[v]) if marg.get(v, 0) > 0 else 0.0 for v in marg.index}
            w = w * np.array([scale[idx[level]] for idx in w.index])
    return w / w.sum()


def stratified_sample(items: list[dict], reference: list[dict], *, n_out: int, seed: int,
                      targets: dict[str, dict] | None = None, dims=DIMENSIONS) -> tuple[list[int], dict]:
    """Indices of `items` drawn so the joint of `dims` follows `reference`'s (the original traffic), with the
    marginals in `targets` imposed on top ({dimension: {value: share}}). Strata short of items give their quota
    to the others in proportion."""
    if not items:
        return [], {}
    dims = list(dims)
    targets = targets or {}
    check_targets(targets, dims, values=None)
    ref = pd.DataFrame([{d: it[d] for d in dims} for it in reference])
    joint = ref.groupby(dims).size().astype(float)
    joint = joint / joint.sum()
    if targets:
        joint = _ipf(joint, targets, dims)
    df = pd.DataFrame([{d: it[d] for d in dims} for it in items])
    groups = {k if isinstance(k, tuple) else (k,): list(v) for k, v in df.groupby(dims).groups.items()}
    n_out = min(n_out, len(items))
    quota = {k: joint.get(k, 0.0) * n_out for k in groups}
    r = rng(seed, "constraints")
    take = {k: min(len(groups[k]), int(np.floor(q))) for k, q in quota.items()}
    # hand out the remainder: first by largest fractional quota, then to strata with items to spare
    remaining = n_out - sum(take.values())
    for k in sorted(groups, key=lambda k: -(quota[k] - np.floor(quota[k]))):
        if remaining <= 0:
            break
        if take[k] < len(groups[k]) and quota[k] > take[k]:
            take[k] += 1
            remaining -= 1
    spare = [k for k in groups if take[k] < len(groups[k])]
    while remaining > 0 and spare:
        for k in sorted(spare, key=lambda k: -quota[k]):
            if remaining > 0 and take[k] < len(groups[k]):
                take[k] += 1
                remaining -= 1
        spare = [k for k in groups if take[k] < len(groups[k])]
    chosen = []
    for k in sorted(groups):
        idx = np.array(sorted(groups[k]))
        chosen.extend(int(i) for i in r.choice(idx, size=take[k], replace=False))
    chosen.sort()
    return chosen, {"n_in": len(items), "n_out": len(chosen)}


def constraint_table(before: list[dict], after: list[dict], reference: list[dict], dims=DIMENSIONS) -> pd.DataFrame:
    """Shares per dimension value: original traffic, after diversity, after constraints."""
    cols = {"original": distribution(reference, dims), "after diversity": distribution(before, dims),
            "after constraints": distribution(after, dims)}
    table = None
    for name, dist in cols.items():
        dist = dist.rename(columns={"share": name}).set_index(["dimension", "value"])
        table = dist if table is None else table.join(dist, how="outer")
    return table.fillna(0.0).round(3)


# ---------------------------------------------------------------------------------------------- the whole stage
def save_traffic(run, generation: int, records: list[dict], **meta) -> dict:
    """Write generation `generation`'s traffic to the run directory (JSONL, dataset, metrics with `meta`), every
    field redacted and scanned first: the run directory never holds raw logs, and a user's own file stays where
    they put it. Returns the logs' own metrics (kit.world.traffic.traffic_metrics)."""
    from .data import save_dataset, write_jsonl
    from .privacy import assert_no_pii, redact_records
    from .world.traffic import traffic_metrics

    clean, redacted = redact_records(records)
    assert_no_pii(clean, f"gen_{generation}/traffic")
    write_jsonl(run.artifact(generation, "traffic.conversations.jsonl"), clean)
    save_dataset(clean, run.artifact(generation, "traffic.conversations"))
    metrics = traffic_metrics(clean)
    run.write_metrics(generation, "traffic", dict(metrics, redacted=redacted, **meta))
    return metrics



def evaluation_prompts(records: list[dict], cards: dict, eval_fraction: float) -> list[dict]:
    """Only the held-out side of some traffic, through the same privacy stage: prompts for the evaluation set
    (the world tour's day of base-model traffic adds them to generation 0's). An opening on the training side is
    dropped, so these never meet a training prompt."""
    from .privacy import assert_no_pii, filter_conversations

    clean, _ = filter_conversations(records)
    _, eval_recs = split_eval(clean, eval_fraction)
    items = prompt_items(eval_recs, cards)
    assert_no_pii(items, "evaluation prompts")
    return items


def curate(records: list[dict], cards: dict, embedder, cfg, seed: int) -> dict:
    """Privacy and safety, held-out split, diversity, constraints. Returns every intermediate the notebook shows:
    {"privacy", "train", "eval", "diverse", "items_all", "emb", "kept_div", "kept_con", "diversity", "table",
     "disjoint", "metrics"}."""
    from .privacy import assert_no_pii, filter_conversations

    clean, privacy = filter_conversations(records)
    train_recs, eval_recs = split_eval(clean, cfg.eval_fraction)
    train_items, eval_items = prompt_items(train_recs, cards), prompt_items(eval_recs, cards)
    emb = embed_prompts(train_items, embedder)
    kept_div, div = diversity_prune(train_items, emb, threshold=cfg.prune_threshold, keep_fraction=cfg.keep_fraction,
                                    seed=seed)
    diverse = [train_items[i] for i in kept_div]
    n_out = max(1, int(round(cfg.constraint_keep * len(diverse)))) if diverse else 0
    kept_con, _ = stratified_sample(diverse, train_items, n_out=n_out, seed=seed, targets=cfg.constraint_targets)
    train = [diverse[i] for i in kept_con]
    disjoint = assert_disjoint(eval_items, train, names=("curated_train",))
    pii_scanned = assert_no_pii(train, "curation/train_prompts") + assert_no_pii(eval_items, "curation/eval_prompts")
    table = constraint_table(diverse, train, train_items)
    metrics = {
        "privacy": {k: v for k, v in privacy.items() if k != "examples"},
        "prompts": {"train_before_diversity": len(train_items), "after_diversity": len(diverse),
                    "after_constraints": len(train), "eval": len(eval_items)},
        "diversity": {k: v for k, v in div.items() if k != "labels"},
        "kept_fraction_overall": len(train) / max(1, len(train_items)),
        "constraints": {"targets": cfg.constraint_targets or "original traffic",
                        "max_abs_share_gap": float((table["after constraints"] - table["original"]).abs().max())
                        if len(table) else 0.0},
        "disjoint": disjoint,
        "pii_check": {"texts_scanned": pii_scanned, "found": 0},
    }
    return {"privacy": privacy, "train": train, "eval": eval_items, "diverse": diverse, "items_all": train_items,
            "emb": emb, "kept_div": kept_div, "kept_con": kept_con, "diversity": div, "table": table,
            "disjoint": disjoint, "metrics": metrics}
