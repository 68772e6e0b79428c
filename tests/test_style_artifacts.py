import numpy as np

from kit import style_artifacts


def test_emoji_riding_along_is_flagged():
    chosen = [f"sure thing {i} 😊✨" for i in range(30)]
    rejected = [f"sure thing {i}" for i in range(30)]
    table = style_artifacts.compare(chosen, rejected)
    assert table.loc["emoji", "flag"] and not table.loc["refusal", "flag"]
    rewards = np.r_[np.ones(30), np.zeros(30)]
    report = style_artifacts.style_report(chosen, rejected, rewards)
    assert report.loc["emoji", "rides_along"] and report.loc["emoji", "corr_with_reward"] > 0.8


def test_no_flag_when_sets_look_alike():
    texts = [f"a reply of some length number {i}." for i in range(20)]
    assert not style_artifacts.compare(texts, texts)["flag"].any()
