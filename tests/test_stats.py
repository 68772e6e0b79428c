import math

import numpy as np

from kit import stats


def test_sigmoid_is_the_logistic_function_elementwise():
    assert stats.sigmoid(0) == 0.5
    x = np.array([-2.0, 0.0, 3.0])
    assert np.allclose(stats.sigmoid(x), [1 / (1 + math.exp(2)), 0.5, 1 / (1 + math.exp(-3))])
    assert np.allclose(stats.sigmoid(x) + stats.sigmoid(-x), 1.0)
    assert stats.sigmoid([1, 2]).dtype == float   # integer logits are not truncated


def test_wilson_interval_holds_the_rate_and_narrows_with_n():
    lo, hi = stats.wilson_ci(80, 100)
    assert lo < 0.8 < hi and hi - lo < 0.2
    lo2, hi2 = stats.wilson_ci(800, 1000)
    assert hi2 - lo2 < hi - lo
    assert 0.0 <= stats.wilson_ci(0, 5)[0] and stats.wilson_ci(5, 5)[1] <= 1.0
    assert all(math.isnan(v) for v in stats.wilson_ci(0, 0))
