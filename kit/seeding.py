"""One seed drives everything: each component draws from its own stream, derived from the run seed and a name.

Streams are independent of the order in which components run, so adding a stage never shifts another's data.
"""
from __future__ import annotations

import hashlib

import numpy as np


def _name_key(names) -> list[int]:
    digest = hashlib.sha256("/".join(str(n) for n in names).encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def rng(seed: int, *names) -> np.random.Generator:
    """A numpy Generator for the component `names` under run seed `seed`."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *_name_key(names)]))


def derive(seed: int, *names) -> int:
    """A 31-bit integer seed for libraries that take one (torch, transformers, TRL)."""
    return int(np.random.SeedSequence([int(seed), *_name_key(names)]).generate_state(1)[0] & 0x7FFFFFFF)


def stable_hash(text: str, buckets: int = 2**32) -> int:
    """A hash of `text` that is the same in every process and on every machine (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") % buckets


def sample_in_order(records: list, n: int, seed: int, *names) -> list:
    """At most n of `records`: a seeded sample (stream `names`) kept in the original order."""
    if len(records) <= n:
        return list(records)
    keep = sorted(rng(seed, *names).choice(len(records), size=n, replace=False).tolist())
    return [records[i] for i in keep]
