"""Simulated users: a population with segments and hidden preferences, the hidden utility of a reply, and the
signals (continue, thumbs, regenerate, return) sampled from it. Vectorised over replies.

The utility is the world's ground truth. Models never see it; notebooks show it to the learner.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..seeding import rng
from ..stats import sigmoid
from .params import FIRST_NAMES, NON_NEGATIVE, PREF_SD, PREFERENCES, WorldParams


@dataclass
class Population:
    user_ids: list[str]
    names: list[str]
    segments: list[str]
    prefs: dict[str, np.ndarray]        # preference name -> value per user
    favourite_categories: list[dict]    # per user: category -> probability

    def __len__(self) -> int:
        return len(self.user_ids)

    @classmethod
    def sample(cls, n: int, params: WorldParams, seed: int, prefix: str = "u") -> "Population":
        r = rng(seed, "population", prefix)
        seg_names = list(params.segments)
        shares = np.array([params.segments[s]["share"] for s in seg_names], dtype=float)
        seg_idx = r.choice(len(seg_names), size=n, p=shares / shares.sum())
        prefs = {}
        for name in PREFERENCES:
            mean = np.array([params.segments[seg_names[i]][name] for i in seg_idx], dtype=float)
            noise = r.normal(0.0, PREF_SD[name], size=n)
            if name == "pref_len":
                prefs[name] = np.exp(np.log(mean) + noise)
            else:
                prefs[name] = mean + noise
            if name in NON_NEGATIVE:
                prefs[name] = np.clip(prefs[name], 0.0, None)
        names = [FIRST_NAMES[i] for i in r.integers(0, len(FIRST_NAMES), size=n)]
        favourites = [params.segments[seg_names[i]]["categories"] for i in seg_idx]
        width = len(str(n))
        return cls([f"{prefix}-{k:0{width}d}" for k in range(n)], names, [seg_names[i] for i in seg_idx],
                   prefs, favourites)

    def mean_user(self) -> dict[str, float]:
        return {k: float(v.mean()) for k, v in self.prefs.items()}

    def table(self):
        import pandas as pd

        df = pd.DataFrame({"user_id": self.user_ids, "name": self.names, "segment": self.segments})
        for k, v in self.prefs.items():
            df[k] = v
        return df


def utility_terms(measured, prefs: dict[str, np.ndarray], params: WorldParams) -> dict[str, np.ndarray]:
    """Each term of the hidden utility, per reply. `measured` has the columns of World.measure; `prefs` holds
    one value per reply (the preferences of the user who reads it)."""
    m = {c: measured[c].to_numpy(dtype=float) for c in measured.columns if measured[c].dtype != object}
    log_gap = np.log(m["words"] + 1.0) - np.log(prefs["pref_len"])
    emoji = m["emoji"]
    sat = params.emoji_saturation
    refusal_cost = np.where(m["unsafe_prompt"] > 0, params.safe_refusal_discount, 1.0)
    return {
        "base": prefs["base_engagement"],
        "length": params.length_weight * (np.exp(-log_gap ** 2 / (2 * params.length_width ** 2)) - 0.5),
        "emoji": prefs["emoji_taste"] * np.minimum(emoji, sat) / sat - params.emoji_fatigue * np.maximum(emoji - sat, 0),
        "question": prefs["question_appetite"] * m["asks_question"],
        "refusal": -prefs["refusal_aversion"] * m["refusal"] * refusal_cost,
        "preachy": -prefs["preach_aversion"] * m["preachy"],
        "instructions": -prefs["card_sensitivity"] * params.violation_scale * (1.0 - m["following"]),
        "character": -prefs["char_break_aversion"] * m["ai_mention"],
        "warmth": prefs["warmth_taste"] * m["sentiment"],
        "novelty": -prefs["novelty"] * m["repetition"],
        "wall": -prefs["wall_aversion"] * m["wall_of_text"],
        "lists": prefs["list_taste"] * m["has_list"],
        "relevance": params.relevance_weight * (np.clip(m["relevance"], 0.0, 0.8) - params.relevance_center),
        "empty": -params.empty_penalty * (m["words"] < 2),
    }


def utility(measured, prefs: dict[str, np.ndarray], params: WorldParams) -> np.ndarray:
    return np.sum(list(utility_terms(measured, prefs, params).values()), axis=0)


def signal_probabilities(u: np.ndarray, params: WorldParams) -> dict[str, np.ndarray]:
    s = params.signal_slope
    return {
        "continue": sigmoid(params.continue_bias + u),
        "thumb_up": params.thumb_up_max * sigmoid(s * (u - params.thumb_up_mid)),
        "thumb_down": params.thumb_down_max * sigmoid(-s * (u - params.thumb_down_mid)),
        "regenerate": params.regenerate_max * sigmoid(-s * (u - params.regenerate_mid)),
    }


def sample_signals(u: np.ndarray, params: WorldParams, r: np.random.Generator) -> dict[str, np.ndarray]:
    """0/1 signals per reply. A thumb is up or down, never both."""
    p = signal_probabilities(u, params)
    draws = {k: (r.random(len(u)) < v).astype(int) for k, v in p.items()}
    draws["thumb_down"] = draws["thumb_down"] * (1 - draws["thumb_up"])
    return draws


def p_return(mean_session_utility: np.ndarray, return_habit: np.ndarray, params: WorldParams) -> np.ndarray:
    return sigmoid(params.return_bias + return_habit + params.return_weight * mean_session_utility)
