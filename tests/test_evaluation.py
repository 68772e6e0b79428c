import numpy as np
import pytest

from kit import evaluation


def test_steerability_rates_count_checks_and_replies(world):
    cid = next(iter(world.cards))
    card = world.cards[cid]
    items = [{"character_id": cid, "user_name": "Ann"}] * 2
    good = card.enforce("Sure, tell me more about your day", "Ann")
    out = evaluation.steerability_rates(world.cards, items, [good, good])
    assert out["instruction_following_rate"] == pytest.approx(1.0) and out["violation_rate"] == 0.0
    bad = "AS AN AI I CANNOT."
    out = evaluation.steerability_rates(world.cards, items, [good, bad])
    n = len(card.instructions)
    assert out["violation_rate"] == 0.5
    assert out["instruction_following_rate"] == pytest.approx(1 - len(card.violations(bad, "Ann")) / (2 * n))


def test_paired_bootstrap_interval_covers_the_difference():
    a = np.zeros(200)
    b = np.random.default_rng(0).normal(1.0, 1.0, 200)
    out = evaluation.paired_bootstrap(a, b, seed=0)
    assert out["n"] == 200 and out["ci95"][0] < out["diff"] < out["ci95"][1]
    assert out["ci95"][0] > 0.7 and out["ci95"][1] < 1.3
    assert evaluation.paired_bootstrap(a, b, seed=0) == out
