"""The notebooks' figures, drawn here so a notebook cell stays one sentence of the story.

Each function takes what a stage computed (a log, a metrics dict, a table) and returns a matplotlib Figure. The
figure is closed in pyplot before it is returned: a notebook shows it once, as the cell's value (or with
`display`), and the report can save it (`fig.savefig`) without pyplot holding on to it.
"""
from __future__ import annotations

import math

from .stats import wilson_ci

PRODUCTION_SHARES = ("false_refusal", "preachy", "positive_sentiment", "cooperativeness", "instruction_violation",
                     "wall_of_text", "emoji_rate", "list_rate")
STEERABILITY = ("instruction_following_rate", "violation_rate")


def _figure(ncols: int = 1, width: float = 6.0, height: float = 3.5):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def _done(fig):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    plt.close(fig)
    return fig


def _interval(value: float, ci) -> list[float]:
    """Error-bar lengths below and above `value` for the interval `ci` (zero where there is none)."""
    if not ci or any(c is None or (isinstance(c, float) and math.isnan(c)) for c in ci):
        return [0.0, 0.0]
    return [max(value - ci[0], 0.0), max(ci[1] - value, 0.0)]


# ---------------------------------------------------------------------------------------------- 01: the world
def utility_response(summary):
    """The hidden utility of one reply and its single-feature edits (notebook 01): `summary` has per variant the
    mean utility and its 10th / 90th percentile over users (columns mean, p10, p90)."""
    fig, (ax,) = _figure(width=7, height=4)
    ax.barh(list(summary.index), summary["mean"], xerr=[summary["mean"] - summary["p10"],
                                                          summary["p90"] - summary["mean"]])
    ax.axvline(summary["mean"].iloc[0], color="grey", ls="--")
    ax.invert_yaxis()
    ax.set_title("hidden utility of one reply and its edits")
    ax.set_xlabel("hidden utility (bars: 10th-90th percentile of users)")
    return _done(fig)


def length_curve(curve):
    """Mean hidden utility against reply length, one line per user segment (notebook 01)."""
    fig, (ax,) = _figure(width=7, height=4)
    curve.pivot(index="words", columns="segment", values="utility").plot(ax=ax, logx=True, marker="o",
                                                                          title="utility vs reply length, by segment")
    ax.set_ylabel("mean hidden utility")
    return _done(fig)


# ---------------------------------------------------------------------------------------------- 03: reward models
def losses(logs: dict[str, list], title: str = "training loss", ylabel: str = "training loss"):
    """Training loss per step, one line per model (`logs`: name -> losses)."""
    fig, (ax,) = _figure()
    for name, loss in logs.items():
        ax.plot(loss, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(logs) > 1:
        ax.legend()
    return _done(fig)


def accuracy_vs_ceiling(results: dict[str, dict]):
    """Accuracy on each evaluation split with its 95 % interval, per model, beside the chance line (notebook 03).
    `results`: model -> split -> {"accuracy", "ci95"}; the reward models, the n-gram bar and the label ceiling."""
    splits = list(dict.fromkeys(s for r in results.values() for s in r))
    models = [m for m, r in results.items() if r]
    fig, (ax,) = _figure(width=8, height=3.5)
    width = 0.8 / max(len(models), 1)
    for k, model in enumerate(models):
        xs, ys, err = [], [], [[], []]
        for j, split in enumerate(splits):
            r = results[model].get(split) or {}
            if r.get("accuracy") is None:
                continue
            low, high = _interval(r["accuracy"], r.get("ci95"))
            xs.append(j + (k - (len(models) - 1) / 2) * width)
            ys.append(r["accuracy"])
            err[0].append(low)
            err[1].append(high)
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=model)
    ax.axhline(0.5, color="k", lw=0.8, ls="--", label="chance")
    ax.set_xticks(range(len(splits)), splits)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95 % CI)")
    ax.set_title("reward models against the n-gram bar and the label ceiling")
    ax.legend(fontsize=7, loc="lower right")
    return _done(fig)


def reward_vs_utility(frame, rho: float):
    """Every evaluation reply: the pointwise reward against the world's hidden utility (notebook 03)."""
    fig, (ax,) = _figure(width=5, height=4)
    ax.scatter(frame["utility"], frame["reward"], alpha=0.6)
    ax.set_xlabel("hidden utility")
    ax.set_ylabel("pointwise reward")
    ax.set_title(f"pointwise reward vs hidden utility (Spearman {rho:.2f})")
    return _done(fig)


def calibration(calib: dict[str, dict]):
    """Reliability of each user-signal model: mean predicted against observed per bin (kit.rewards.calibration)."""
    fig, axes = _figure(ncols=max(len(calib), 1), width=4.5 * max(len(calib), 1))
    for ax, (signal, c) in zip(axes, calib.items()):
        bins = c["bins"]
        if bins:
            ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], "o-")
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        nan = float("nan")
        ax.set_title(f"p({signal}): Brier {c['brier'] if c['brier'] is not None else nan:.3f}, "
                     f"ECE {c['ece'] if c['ece'] is not None else nan:.3f}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("observed")
    return _done(fig)


# ---------------------------------------------------------------------------------------------- 04, 05: policies
CHECK_PANELS = (("instruction_following_rate", "following", "share of the card's rules followed"),
                ("violation_rate", None, "replies breaking a rule"),
                ("mean_reward", "reward", "mean reward"),
                ("hidden_utility", "hidden_utility", "hidden utility (never optimised)"))


def held_out_check(check: dict, baseline: str):
    """Before and after, on the same held-out prompts (kit.evaluation.held_out_check): one panel per measure, a
    bar per policy; the paired 95 % interval of each policy's difference from `baseline` is drawn on its bar."""
    panels = [p for p in CHECK_PANELS if any(p[0] in d for d in check.values())]
    fig, axes = _figure(ncols=len(panels), width=3.2 * len(panels), height=3.2)
    names = list(check)
    for ax, (key, paired, title) in zip(axes, panels):
        values = [check[n].get(key, float("nan")) for n in names]
        err = [[0.0] * len(names), [0.0] * len(names)]
        for i, n in enumerate(names):
            diff = check[n].get(f"vs_{baseline}", {}).get(paired) if paired else None
            if diff:   # the difference's interval, placed around this policy's value
                err[0][i], err[1][i] = _interval(diff["diff"], diff["ci95"])
        ax.bar(names, values, yerr=err, capsize=5, color=["tab:grey"] + ["tab:blue"] * (len(names) - 1))
        ax.set_title(title, fontsize=9)
        if key == "hidden_utility" or key == "mean_reward":
            ax.axhline(0, color="k", lw=0.6)
    return _done(fig)


def dpo_curves(log: dict):
    """The DPO patch: its loss, and the implicit rewards of chosen and rejected replies (beta log pi/pi_ref)."""
    import pandas as pd

    fig, axes = _figure(ncols=2, width=9, height=3)
    axes[0].plot(log["loss"])
    axes[0].set_title("DPO loss")
    axes[0].set_xlabel("step")
    curves = pd.DataFrame(log["curves"])
    shown = [c for c in ("rewards/chosen", "rewards/rejected") if c in curves]
    if shown:
        curves[shown].plot(ax=axes[1], title="implicit rewards (beta log pi/pi_ref)")
    axes[1].set_xlabel("step")
    return _done(fig)


def rl_curves(curves: dict):
    """Online RL per step: the reward, the KL to the start policy and the reply length (those logged)."""
    panels = [k for k in ("reward", "kl", "length") if curves.get(k)]
    fig, axes = _figure(ncols=max(len(panels), 1), width=4 * max(len(panels), 1), height=3)
    for ax, k in zip(axes, panels):
        ax.plot(curves[k], marker="o")
        ax.set_title(k)
        ax.set_xlabel("step")
    return _done(fig)


# ---------------------------------------------------------------------------------------------- 06: the gate
def win_rates(wins: dict, *, max_win_rate: float, min_win_rate: float):
    """The gate's view of the reward-model win rates (kit.evaluation.win_rates): user against internal prompts,
    pointwise and pairwise, each with its 95 % Wilson interval, inside the window the gate allows."""
    fig, (ax,) = _figure(width=6.5, height=3.5)
    kinds = list(wins)
    for k, source in enumerate(("user", "internal")):
        xs, ys, err = [], [], [[], []]
        for j, kind in enumerate(kinds):
            rate, n = wins[kind].get(source), wins[kind].get(f"n_{source}", 0)
            if rate is None:
                continue
            xs.append(j + (k - 0.5) * 0.38)
            ys.append(rate)
            low, high = _interval(rate, wilson_ci(rate * n, n))
            err[0].append(low)
            err[1].append(high)
        ax.bar(xs, ys, 0.38, yerr=err, capsize=4, label=f"{source} prompts")
    ax.axhspan(min_win_rate, max_win_rate, color="tab:green", alpha=0.1, label="the gate's window")
    ax.axhline(max_win_rate, color="r", ls="--", lw=0.8, label=f"overfit guard ({max_win_rate:.0%})")
    ax.set_xticks(range(len(kinds)), [f"{k} reward model" for k in kinds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("candidate's win rate vs deployed")
    ax.set_title("win rates, user vs internal (95 % CI)")
    ax.legend(fontsize=7)
    return _done(fig)


def policy_metrics(table):
    """Deployed policy against the candidate (and the base model, once a later policy is deployed): the
    production metrics, steerability, and the hidden utility (a table of kit.evaluation.summary_table)."""
    fig, axes = _figure(ncols=3, width=14, height=3.5)
    shares = [m for m in PRODUCTION_SHARES if m in table.index]
    table.loc[shares].plot.bar(ax=axes[0])
    axes[0].set_ylabel("share of replies")
    axes[0].set_title("production metrics")
    table.loc[list(STEERABILITY)].plot.bar(ax=axes[1], legend=False)
    axes[1].set_title("steerability")
    axes[1].set_xticks(range(len(STEERABILITY)), ["instruction following", "violation rate"], rotation=0)
    table.loc[["hidden_utility"]].T.plot.bar(ax=axes[2], legend=False, color="tab:purple")
    axes[2].axhline(0, color="k", lw=0.6)
    axes[2].set_title("hidden utility (the gate never sees it)")
    return _done(fig)


# ---------------------------------------------------------------------------------------------- 07, 08: A/B, flywheel
def ab_test(day, result: dict):
    """A week of the A/B test: daily breadth and depth per arm (kit.abtest.daily), and the lifts with their 95 %
    intervals (kit.abtest.analyse)."""
    fig, axes = _figure(ncols=3, width=13, height=3.5)
    for metric, ax in zip(("breadth", "depth"), axes):
        day.pivot(index="day", columns="arm", values=metric).plot(ax=ax, marker="o", title=f"daily {metric}")
    names = ["breadth", "depth"]
    lifts = [100 * result[m]["lift"] for m in names]
    err = [[100 * (result[m]["lift"] - result[m]["ci95"][0]) for m in names],
           [100 * (result[m]["ci95"][1] - result[m]["lift"]) for m in names]]
    axes[2].bar(names, lifts, yerr=err, capsize=6, color=["tab:blue", "tab:orange"])
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].set_ylabel("% lift (95 % CI)")
    axes[2].set_title("treatment vs control")
    return _done(fig)


def ab_lifts(traj):
    """A/B lift of breadth and depth per generation with 95 % intervals, each marked promoted or rejected (a
    table of kit.flywheel.trajectory)."""
    fig, axes = _figure(ncols=2, width=11, height=3.5)
    for ax, m in zip(axes, ("breadth", "depth")):
        if f"{m}_lift" in traj:
            t = traj.dropna(subset=[f"{m}_lift"])
            ax.errorbar(t["generation"], 100 * t[f"{m}_lift"],
                        yerr=[100 * (t[f"{m}_lift"] - t[f"{m}_ci_low"]), 100 * (t[f"{m}_ci_high"] - t[f"{m}_lift"])],
                        fmt="o", capsize=5)
            for _, r in t.iterrows():
                ax.annotate("promoted" if r["promoted"] else "rejected", (r["generation"], 100 * r[f"{m}_lift"]),
                            textcoords="offset points", xytext=(6, 6), fontsize=8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("generation")
        ax.set_ylabel("% lift (95 % CI)")
        ax.set_title(m)
    return _done(fig)


def offline_trajectory(traj, max_win_rate: float = 0.65):
    """Per generation: the win rates on user and internal prompts against the overfit guard, steerability of the
    candidate (and the deployed policy before it), and the candidate's style (a table of kit.flywheel.trajectory)."""
    fig, axes = _figure(ncols=3, width=15, height=3.5)
    if "win_pointwise_user" in traj:
        traj.plot(x="generation", y=["win_pointwise_user", "win_pointwise_internal", "win_pairwise_user",
                                     "win_pairwise_internal"], marker="o", ax=axes[0], title="win rate vs deployed")
        axes[0].axhline(max_win_rate, color="r", ls="--", lw=0.8, label="overfit guard")
        axes[0].legend(fontsize=7)
        traj.plot(x="generation", y=["deployed_instruction_following", "instruction_following", "violation_rate"],
                  marker="o", ax=axes[1], title="steerability (candidate; deployed before it)")
        traj.plot(x="generation", y=["emoji_rate", "preachy", "false_refusal"], marker="o", ax=axes[2],
                  title="style of the candidate")
        twin = axes[2].twinx()
        twin.plot(traj["generation"], traj["mean_length"], "k--", label="mean length (words)")
        twin.set_ylabel("words")
        twin.legend(loc="upper right", fontsize=7)
    return _done(fig)
