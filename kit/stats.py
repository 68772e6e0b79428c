"""Small statistics every stage shares: the logistic function and the Wilson interval of a rate."""
from __future__ import annotations

import math

import numpy as np


def sigmoid(x) -> np.ndarray:
    """1 / (1 + e^-x), elementwise, as floats: a logit to a probability (the world's signals, the reward models'
    scores, the pairwise judge)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def wilson_ci(successes: int, n: int, z: float = 1.96) -> list[float]:
    """The Wilson score interval of successes / n (95 % at z = 1.96), rounded to 4 places; NaNs when n is 0."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [round(centre - half, 4), round(centre + half, 4)]
