"""Text sampling: how a policy writes replies, in batches, with the model's own chat template; the one path every
stage uses to let a policy reply (rejection sampling, which chooses among replies, is kit/rejection.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .seeding import derive


@dataclass
class GenerationStats:
    replies: int = 0
    new_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def chat_prompts(tokenizer, conversations: list[list[dict]]) -> list[str]:
    """Render each conversation with the tokenizer's chat template, ending in the assistant's turn."""
    return [tokenizer.apply_chat_template(conv, add_generation_prompt=True, tokenize=False) for conv in conversations]


def unfinished(ids, end_ids: set, max_tokens: int | None) -> bool:
    """Whether a completion's token ids stop at the length limit without an end token."""
    ids = list(ids)
    return bool(ids) and (max_tokens is None or len(ids) >= max_tokens) and int(ids[-1]) not in end_ids


def generate_replies(model, tokenizer, conversations: list[list[dict]], *, max_new_tokens: int = 80,
                     temperature: float = 0.8, top_p: float = 0.95, batch_size: int = 32, seed: int = 0,
                     desc: str = "generating", progress: bool = True, stats: GenerationStats | None = None,
                     max_prompt_tokens: int = 1024, cut: list | None = None) -> list[str]:
    """One reply per conversation (a list of {role, content} messages, system first if any).

    `cut`, a list, receives one bool per reply in input order: whether the token limit stopped it before it ended.

    Prompts are sorted by length so batches pad little, then replies are put back in the input order.
    Sampling is seeded per batch, so the same seed and inputs give the same replies.
    """
    import time

    import torch
    from tqdm.auto import tqdm

    if not conversations:
        if cut is not None:
            cut[:] = []
        return []
    texts = chat_prompts(tokenizer, conversations)
    # The template already holds every special token it needs; a tokenizer BOS on top would double it.
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][-max_prompt_tokens:] for t in texts]
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    replies: list[str] = [""] * len(encoded)
    stopped = [False] * len(encoded)
    ends = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    tokenizer.padding_side = "left"
    stats = stats if stats is not None else GenerationStats()
    start = time.perf_counter()
    bar = tqdm(total=len(order), desc=desc, disable=not progress, leave=False)
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
        batch = {k: v.to(model.device) for k, v in batch.items()}
        torch.manual_seed(derive(seed, "generate", b))
        sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **sampling)
        new = out[:, batch["input_ids"].shape[1]:]
        for row, i in enumerate(idx):
            tokens = new[row]
            stats.new_tokens += int((tokens != tokenizer.pad_token_id).sum())
            replies[i] = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            stopped[i] = unfinished(tokens.tolist(), ends, max_new_tokens)
        bar.update(len(idx))
    bar.close()
    stats.replies += len(encoded)
    stats.seconds += time.perf_counter() - start
    if cut is not None:
        cut[:] = stopped
    return replies


def weights_fingerprint(model_name: str, adapter=None) -> str:
    """A digest of what a policy's weights are: the base model's name, plus the bytes of a local adapter's
    weights and config (so an adapter retrained in place gets a new fingerprint)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256(str(model_name).encode())
    if adapter is not None:
        path = Path(adapter)
        files = [path / n for n in ("adapter_config.json", "adapter_model.safetensors") if (path / n).is_file()]
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        if not files:   # not a local adapter folder (a hub id, a missing path): its name stands for it
            h.update(f"adapter:{adapter}".encode())
    return h.hexdigest()[:20]


class Policy:
    """A model that replies in character: what traffic, rejection sampling, evaluation and the A/B test call."""

    def __init__(self, name: str, model, tokenizer, *, max_new_tokens: int = 80, temperature: float = 0.8,
                 top_p: float = 0.95, batch_size: int = 32, seed: int = 0, source: str | None = None):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.source = source   # what the weights are (weights_fingerprint); None: unknown, never cached
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.batch_size, self.seed = batch_size, seed
        self.stats = GenerationStats()

    @classmethod
    def load(cls, model_name: str, adapter=None, *, name: str | None = None, gen=None, seed: int = 0) -> "Policy":
        """Load through the backend switch. `gen` is a GenerationConfig (or anything with its fields)."""
        from .models import load_policy

        model, tokenizer = load_policy(model_name, adapter)
        kw = {} if gen is None else dict(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature,
                                         top_p=gen.top_p, batch_size=gen.gen_batch_size)
        return cls(name or (str(adapter) if adapter else model_name), model, tokenizer, seed=seed,
                   source=weights_fingerprint(model_name, adapter), **kw)

    def sample(self, conversations: list[list[dict]], *, max_new_tokens: int, temperature: float, top_p: float,
               batch_size: int, seed: int, desc: str, progress: bool = True) -> list[str]:
        """Replies with every sampling setting given (kit.evaluation.generate_for caches them by these)."""
        return generate_replies(self.model, self.tokenizer, conversations, max_new_tokens=max_new_tokens,
                                temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed, desc=desc,
                                progress=progress, stats=self.stats)

    def reply(self, conversations: list[list[dict]], *, seed_key="", temperature: float | None = None,
              desc: str | None = None, progress: bool = True) -> list[str]:
        return generate_replies(
            self.model, self.tokenizer, conversations, max_new_tokens=self.max_new_tokens,
            temperature=self.temperature if temperature is None else temperature, top_p=self.top_p,
            batch_size=self.batch_size, seed=derive(self.seed, self.name, seed_key), desc=desc or self.name,
            progress=progress, stats=self.stats)
