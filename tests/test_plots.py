"""Every figure of kit.plots draws from what its stage computes (small hand-made inputs of the same shape), and
comes back closed in pyplot: a notebook shows it once, as the cell's value."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from kit import evaluation, plots  # noqa: E402

TRAJ = pd.DataFrame({
    "generation": [0, 1], "promoted": [True, False],
    "breadth_lift": [0.02, -0.01], "breadth_ci_low": [-0.01, -0.03], "breadth_ci_high": [0.05, 0.01],
    "depth_lift": [0.04, -0.02], "depth_ci_low": [0.01, -0.05], "depth_ci_high": [0.07, 0.01],
    "win_pointwise_user": [0.6, 0.7], "win_pointwise_internal": [0.55, 0.5], "win_pairwise_user": [0.58, 0.66],
    "win_pairwise_internal": [0.5, 0.52], "deployed_instruction_following": [0.7, 0.8],
    "instruction_following": [0.8, 0.85], "violation_rate": [0.3, 0.2], "emoji_rate": [0.1, 0.4],
    "preachy": [0.05, 0.0], "false_refusal": [0.02, 0.01], "mean_length": [30.0, 42.0]})


def _summary(following, violations, utility):
    return {"instruction_following_rate": following, "violation_rate": violations, "hidden_utility": utility,
            "production": {m: 0.1 for m in plots.PRODUCTION_SHARES} | {"mean_length": 30.0}}


CASES = {
    "utility_response": lambda: plots.utility_response(
        pd.DataFrame({"mean": [0.1, 0.3], "p10": [-0.2, 0.0], "p90": [0.4, 0.6]}, index=["as is", "+ 2 emoji"])),
    "length_curve": lambda: plots.length_curve(pd.DataFrame(
        {"words": [10, 40, 10, 40], "segment": ["casual", "casual", "learner", "learner"],
         "utility": [0.2, -0.1, -0.3, 0.4]})),
    "losses": lambda: plots.losses({"pointwise": [0.7, 0.6], "pairwise": [0.69, 0.5]}),
    "accuracy_vs_ceiling": lambda: plots.accuracy_vs_ceiling({
        "pointwise model": {"consensus": {"accuracy": 0.6, "ci95": [0.4, 0.8]},
                            "single rater": {"accuracy": None, "ci95": None}},
        "n-gram baseline": {"consensus": {"accuracy": 0.5, "ci95": [float("nan"), float("nan")]}},
        "label ceiling": {}}),
    "reward_vs_utility": lambda: plots.reward_vs_utility(pd.DataFrame({"utility": [0.1, 0.5], "reward": [0.0, 1.0]}),
                                                         1.0),
    "calibration": lambda: plots.calibration({
        "continue": {"bins": [{"mean_predicted": 0.3, "observed": 0.4, "n": 3}], "brier": 0.2, "ece": 0.1},
        "thumb_up": {"bins": [], "brier": None, "ece": None}}),
    "held_out_check": lambda: plots.held_out_check({
        "base": {"instruction_following_rate": 0.7, "violation_rate": 0.4, "mean_reward": 0.1,
                 "hidden_utility": -0.1},
        "sft": {"instruction_following_rate": 0.8, "violation_rate": 0.3, "mean_reward": 0.3, "hidden_utility": 0.1,
                "vs_base": {"following": {"diff": 0.1, "ci95": [0.0, 0.2], "n": 4},
                            "reward": {"diff": 0.2, "ci95": [float("nan"), float("nan")], "n": 4}}}}, "base"),
    "dpo_curves": lambda: plots.dpo_curves({"loss": [0.69, 0.6], "curves": {"rewards/chosen": [0.0, 0.1],
                                                                           "rewards/rejected": [0.0, -0.1]}}),
    "rl_curves": lambda: plots.rl_curves({"reward": [0.1, 0.3], "kl": [0.0, 0.01], "length": []}),
    "win_rates": lambda: plots.win_rates({"pointwise": {"user": 0.6, "n_user": 10, "internal": 0.5, "n_internal": 4},
                                          "pairwise": {"user": 0.55, "n_user": 10, "internal": None}},
                                         max_win_rate=0.65, min_win_rate=0.5),
    "policy_metrics": lambda: plots.policy_metrics(evaluation.summary_table(
        {"deployed": _summary(0.7, 0.4, -0.1), "candidate": _summary(0.9, 0.2, 0.2)})),
    "ab_test": lambda: plots.ab_test(
        pd.DataFrame({"day": [0, 0, 1, 1], "arm": ["control", "treatment"] * 2, "breadth": [0.5, 0.52, 0.4, 0.41],
                      "depth": [3.0, 3.2, 2.9, 3.1]}),
        {"breadth": {"lift": 0.02, "ci95": [-0.01, 0.05]}, "depth": {"lift": 0.05, "ci95": [0.01, 0.09]}}),
    "ab_lifts": lambda: plots.ab_lifts(TRAJ),
    "offline_trajectory": lambda: plots.offline_trajectory(TRAJ, max_win_rate=0.65),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_figure_is_drawn_and_closed(name):
    before = plt.get_fignums()
    fig = CASES[name]()
    assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    assert plt.get_fignums() == before, "closed in pyplot: shown once, as the cell's value"


def test_every_figure_has_a_case():
    drawn = {n for n, f in vars(plots).items() if callable(f) and not n.startswith("_")
             and getattr(f, "__module__", "") == plots.__name__}
    assert drawn == set(CASES)


def test_an_offline_trajectory_without_evaluations_draws_empty_panels():
    fig = plots.offline_trajectory(pd.DataFrame({"generation": [0]}))
    assert len(fig.axes) == 3
