"""Style-artifact control (step 5 of the method): no surface feature may ride along with the reward.

Each reply feature (length, emoji, lists, "I feel", questions, ...) is compared between two sets of replies that
a stage treats differently (chosen vs rejected preference replies; accepted vs rejected rejection-sampling
candidates; one checkpoint vs another), and correlated with the reward. A feature is flagged when its
standardised difference or its rank correlation with the reward reaches the threshold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .features import FEATURES, feature_table

# Features worth watching as artifacts: what a reward can latch onto without the reply being better.
STYLE_FEATURES = ("words", "sentences", "emoji", "has_list", "asks_question", "ends_question", "i_feel", "preachy",
                  "refusal", "sentiment", "wall_of_text", "repetition", "ai_mention")


def compare(first: list[str], second: list[str], labels=("chosen", "rejected"), threshold: float = 0.3):
    """Per feature: mean in each set, standardised mean difference, and a flag."""
    a, b = feature_table(first), feature_table(second)
    rows = []
    for f in STYLE_FEATURES:
        x, y = a[f].astype(float), b[f].astype(float)
        # standardised by the spread of both sets together: a feature constant within each set but different
        # between them (every chosen reply has emoji, no rejected one does) is the clearest artifact of all
        sd = float(np.concatenate([x, y]).std()) if len(x) and len(y) else 0.0
        diff = (x.mean() - y.mean()) / sd if sd > 0 else 0.0
        rows.append({"feature": f, f"mean_{labels[0]}": x.mean(), f"mean_{labels[1]}": y.mean(),
                     "std_diff": diff, "flag": abs(diff) >= threshold})
    return pd.DataFrame(rows).set_index("feature")


def reward_correlation(replies: list[str], rewards: np.ndarray, threshold: float = 0.3):
    """Spearman correlation of each feature with the reward over `replies`, and a flag."""
    from scipy.stats import spearmanr

    table = feature_table(replies)
    rows = []
    for f in STYLE_FEATURES:
        col = table[f].astype(float).to_numpy()
        rho = spearmanr(col, rewards)[0] if np.std(col) > 0 and np.std(rewards) > 0 else 0.0
        rows.append({"feature": f, "corr_with_reward": float(rho), "flag": abs(rho) >= threshold})
    return pd.DataFrame(rows).set_index("feature")


def style_report(chosen: list[str], rejected: list[str], rewards: np.ndarray | None = None,
                 threshold: float = 0.3):
    """chosen-vs-rejected comparison joined with the reward correlation (over chosen + rejected), one flag."""
    table = compare(chosen, rejected, threshold=threshold).rename(columns={"flag": "flag_diff"})
    if rewards is not None:
        corr = reward_correlation(list(chosen) + list(rejected), np.asarray(rewards), threshold)
        table = table.join(corr.rename(columns={"flag": "flag_corr"}))
        table["rides_along"] = table["flag_diff"] | table["flag_corr"]
    else:
        table["rides_along"] = table["flag_diff"]
    return table.round(3)


__all__ = ["STYLE_FEATURES", "FEATURES", "compare", "reward_correlation", "style_report"]
