"""The run's report: every figure a learner or a reader should trust, read from the run's own files.

`python -m kit report RUN_DIR` (and the flywheel, at its end) writes `RUN_DIR/report.md` with its figures as PNG files
beside it: the stage table with wall times, per generation the reward models against their label ceiling and the
n-gram bar, what SFT and RL did to instruction following and to the hidden utility, the gate and the A/B test with
their intervals, the candidate against the base model, style metrics, the cumulative A/B test, and the packages and
commit the run used. Nothing in it is typed by hand: each number is a field of a `metrics.json` or of
`manifest.json`. `python -m kit report A B C --compare OUT.md` sets several runs (seeds) side by side.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

from .errors import KitError
from .paths import Run, write_text


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _intervals(ax, x, estimates: list, k: int, key: str, scale: float = 1.0, **style):
    """Point estimates `key` with their 95 % intervals (`ci95`) at generations `x`, series k of two side by side;
    a generation without an estimate (None) is left out."""
    pairs = [(xi + (k - 0.5) * 0.15, e) for xi, e in zip(x, estimates) if e]
    ys = [scale * e[key] for _, e in pairs]
    err = [[scale * (e[key] - e["ci95"][0]) for _, e in pairs], [scale * (e["ci95"][1] - e[key]) for _, e in pairs]]
    ax.errorbar([xi for xi, _ in pairs], ys, yerr=err, fmt="o", capsize=4, **style)


def _pct(x, digits: int = 1) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f} %"


def _ci(ci, scale: float = 100.0, unit: str = "", sign: bool = False) -> str:
    if not ci or any(v is None for v in ci):
        return ""
    fmt = "{:+.1f}" if sign else "{:.1f}"
    return f"[{fmt.format(scale * ci[0])}, {fmt.format(scale * ci[1])}]{unit}"


def _lift(m) -> str:
    return "" if not m else f"{100 * m['lift']:+.1f} % {_ci(m['ci95'], sign=True)}"


def _diff(d: dict | None, scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    if not d or d.get("diff") is None:
        return ""
    f = f"{{:+.{digits}f}}"
    return (f"{f.format(scale * d['diff'])}{unit} [{f.format(scale * d['ci95'][0])}, "
            f"{f.format(scale * d['ci95'][1])}]")


# ---------------------------------------------------------------------------------------------- the figures
def generation_summary(run: Run, g: int) -> dict:
    """What one generation measured, from its metrics files (missing stages give None)."""
    read = lambda stage, sub=None: run.read_metrics(g, stage, sub) if run.has_metrics(g, stage, sub) else {}  # noqa
    rm, sft, rl, ev, ab = read("rewards"), read("policy", "sft"), read("policy", "rl"), read("eval"), read("ab")
    status = run.generation_status(g)
    return {
        "generation": g,
        "rm_train_pairs": _get(rm, "training", "pointwise", "train_pairs"),
        "rm_consensus": _get(rm, "accuracy", "pointwise", "consensus"),
        "rm_single": _get(rm, "accuracy", "pointwise", "single rater"),
        "rm_spearman": rm.get("utility_spearman"), "rm_spearman_p": rm.get("utility_spearman_p"),
        "ceiling_consensus": _get(rm, "label_ceiling", "consensus", "accuracy"),
        "ngram_consensus": _get(rm, "ngram_baseline", "consensus", "accuracy"),
        "sft_vs_base": _get(sft, "held_out", "sft", "vs_base"),
        "sft_steps": _get(sft, "training", "steps"), "sft_examples": _get(sft, "training", "examples"),
        "rl_vs_start": _get(rl, "held_out", "rl", "vs_start"),
        "rl_start": {k: _get(rl, "held_out", "start", k) for k in ("hidden_utility", "mean_words", "mean_reward")},
        "rl_end": {k: _get(rl, "held_out", "rl", k) for k in ("hidden_utility", "mean_words", "mean_reward")},
        "win_rate": _get(ev, "win_rate", "pointwise"),
        "gate": _get(ev, "gate"),
        "candidate": {k: _get(ev, "candidate", k) for k in ("instruction_following_rate", "violation_rate",
                                                             "hidden_utility")},
        "deployed": {k: _get(ev, "deployed", k) for k in ("instruction_following_rate", "violation_rate",
                                                           "hidden_utility")},
        "base": {k: _get(ev, "base", k) for k in ("instruction_following_rate", "violation_rate", "hidden_utility")},
        "candidate_vs_base": _get(ev, "candidate_vs_base"),
        "style": {k: _get(ev, "candidate", "production", k) for k in ("emoji_rate", "mean_length", "preachy",
                                                                       "false_refusal", "wall_of_text")},
        "breadth": ab.get("breadth"), "depth": ab.get("depth"), "srm_p": ab.get("srm_p_value"),
        "promoted": bool(status.get("promoted")), "decision": _get(ab, "decision", "reasons"),
    }


def run_summary(run: Run) -> dict:
    manifest = run.manifest()
    gens = sorted(int(k) for k in manifest.get("generations", {}))
    timings = manifest.get("timings", {})
    last = manifest.get("last_promoted")
    cumulative = run.read_metrics(last, "ab", "cumulative") if last is not None and \
        run.has_metrics(last, "ab", "cumulative") else None
    return {"run_dir": str(run.root), "parameters": manifest.get("parameters", {}),
            "versions": manifest.get("versions", {}), "git_commit": manifest.get("git_commit"),
            "timings": timings, "minutes": round(sum(timings.values()) / 60, 1),
            "generations": [generation_summary(run, g) for g in gens], "last_promoted": last,
            "cumulative": cumulative}


def _rl_words(g: dict, digits: int = 0) -> str:
    """Mean words of RL's start and of RL on the held-out prompts, "" for a generation without RL (rl_algorithm none
    writes the start's check only)."""
    start, end = g["rl_start"]["mean_words"], g["rl_end"]["mean_words"]
    return "" if start is None or end is None else f"{start:.{digits}f} -> {end:.{digits}f}"


def criteria(summary: dict) -> dict:
    """The headline questions of a run, each answered from its figures: does the reward model learn (from
    generation 1 on), does RL raise the hidden utility, how far has the last promoted candidate come from the base
    model, did engagement rise, and how long did it take."""
    gens = summary["generations"]
    later = [g for g in gens if g["generation"] >= 1 and g["rm_consensus"]]
    rl = [g for g in gens if g["rl_vs_start"]]
    last = summary["last_promoted"]
    promoted = next((g for g in gens if g["generation"] == last), None)
    out = {
        "rm_learns": bool(later) and all(g["rm_consensus"]["accuracy"] >= 0.7 and g["rm_consensus"]["ci95"][0] > 0.5
                                         and (g["rm_spearman"] or 0) >= 0.3 and (g["rm_spearman_p"] or 1) < 0.01
                                         for g in later),
        "rl_raises_utility": sum(1 for g in rl if g["rl_vs_start"]["hidden_utility"]["ci95"][0] > 0
                                 and abs(g["rl_end"]["mean_words"] / g["rl_start"]["mean_words"] - 1) <= 0.3),
        "rl_generations": len(rl),
        "promoted": [g["generation"] for g in gens if g["promoted"]],
        "minutes": summary["minutes"],
    }
    if promoted and promoted["candidate_vs_base"]:
        base, cand = promoted["base"], promoted["candidate"]
        out["steerability"] = {
            "following_gain_points": 100 * promoted["candidate_vs_base"]["following"]["diff"],
            "following_gain_ci": [100 * x for x in promoted["candidate_vs_base"]["following"]["ci95"]],
            "following": [base["instruction_following_rate"], cand["instruction_following_rate"]],
            "violation": [base["violation_rate"], cand["violation_rate"]],
            "violation_relative_change": (cand["violation_rate"] / base["violation_rate"] - 1)
            if base["violation_rate"] else None}
    if summary["cumulative"]:
        c = summary["cumulative"]
        out["cumulative_depth"] = {"lift": c["depth"]["lift"], "ci95": c["depth"]["ci95"],
                                   "ci95_users": c["depth"].get("ci95_users")}
        out["cumulative_breadth"] = {"lift": c["breadth"]["lift"], "ci95": c["breadth"]["ci95"]}
    return out


# ---------------------------------------------------------------------------------------------- the report
def _figures(summary: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gens = summary["generations"]
    x = [g["generation"] for g in gens]
    names = []
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    ax = axes[0]
    for key, label in (("rm_consensus", "pointwise model"), ("ceiling_consensus", "label ceiling"),
                       ("ngram_consensus", "n-gram bar")):
        ys = [(g[key]["accuracy"] if isinstance(g[key], dict) else g[key]) for g in gens]
        ax.plot(x, [y if y is not None else float("nan") for y in ys], marker="o", label=label)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title("reward model: consensus accuracy"); ax.set_xlabel("generation"); ax.legend(fontsize=8)
    ax = axes[1]
    for who, style in (("base", ":"), ("deployed", "--"), ("candidate", "-")):
        ax.plot(x, [g[who]["instruction_following_rate"] for g in gens], marker="o", ls=style, label=f"{who} following")
        ax.plot(x, [g[who]["violation_rate"] for g in gens], marker="s", ls=style, label=f"{who} violations")
    ax.set_title("steerability on held-out prompts"); ax.set_xlabel("generation"); ax.legend(fontsize=7)
    ax = axes[2]
    for k, (metric, colour) in enumerate((("breadth", "tab:blue"), ("depth", "tab:orange"))):
        _intervals(ax, x, [g[metric] for g in gens], k, "lift", scale=100, color=colour, label=metric)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title("A/B lift vs the deployed policy (95 %)"); ax.set_xlabel("generation"); ax.set_ylabel("%")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x)
    fig.tight_layout()
    fig.savefig(folder / "report_trajectory.png", dpi=110)
    plt.close(fig)
    names.append("report_trajectory.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ax = axes[0]
    for source in ("user", "internal"):
        ax.plot(x, [_get(g, "win_rate", source) for g in gens], marker="o", label=source)
    ax.axhspan(0.5, 0.65, color="green", alpha=0.1, label="gate window")
    ax.set_title("reward-model win rate, candidate vs deployed"); ax.set_xlabel("generation"); ax.legend(fontsize=8)
    ax = axes[1]
    for k, (key, label) in enumerate((("sft_vs_base", "SFT vs base"), ("rl_vs_start", "RL vs its start"))):
        _intervals(ax, x, [_get(g, key, "hidden_utility") for g in gens], k, "diff", label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_title("held-out hidden utility change (95 %)"); ax.set_xlabel("generation"); ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x)
    fig.tight_layout()
    fig.savefig(folder / "report_gate_and_utility.png", dpi=110)
    plt.close(fig)
    names.append("report_gate_and_utility.png")
    return names


def _commit_said(commit: str | None) -> str:
    """The run's commit as the report gives it: 12 characters, and whether the checkout had uncommitted changes
    (kit.paths.git_commit's "-dirty"), which the commit alone does not reproduce."""
    if not commit:
        return "`unknown`"
    sha, dirty = commit.removesuffix("-dirty"), commit.endswith("-dirty")
    said = " with uncommitted changes (the settings are in each stage's `metrics.json`)" if dirty else ""
    return f"`{sha[:12]}`{said}"


def report_markdown(summary: dict, figures: list[str]) -> str:
    p = summary["parameters"]
    gens = summary["generations"]
    c = criteria(summary)
    lines = [f"# Flywheel report: `{Path(summary['run_dir']).name}`", "",
             f"Profile `{p.get('profile')}`, seed {p.get('seed')}, model `{p.get('model_name')}`, scenario "
             f"`{p.get('scenario', 'none')}`, {len(gens)} generation(s), {summary['minutes']} min of notebooks. "
             f"Commit {_commit_said(summary['git_commit'])}. Every figure below is read from this run's "
             f"`manifest.json` and `gen_<g>/<stage>/metrics.json`.", ""]
    lines += [f"![trajectory]({figures[0]})", "", f"![gate and utility]({figures[1]})", ""]
    lines += ["## Reward models", "", "| gen | train pairs | consensus (95 %) | single rater | label ceiling | "
              "n-gram bar | Spearman with hidden utility |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for g in gens:
        rc, rs = g["rm_consensus"] or {}, g["rm_single"] or {}
        rho = "" if g["rm_spearman"] is None else f"{g['rm_spearman']:+.2f} (p {g['rm_spearman_p']:.2g})"
        lines.append(f"| {g['generation']} | {g['rm_train_pairs'] or ''} | {_pct(rc.get('accuracy'))} "
                     f"{_ci(rc.get('ci95'))} (n={rc.get('n', '')}) | {_pct(rs.get('accuracy'))} | "
                     f"{_pct(g['ceiling_consensus'])} | {_pct(g['ngram_consensus'])} | {rho} |")
    lines += ["", "## Policy optimisation (held-out prompts, paired differences with 95 % intervals)", "",
              "| gen | SFT vs base: following (pts) | SFT vs base: hidden utility | RL vs its start: hidden utility | "
              "RL: reward it optimised | RL: words |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for g in gens:
        sft, rl = g["sft_vs_base"] or {}, g["rl_vs_start"] or {}
        words = _rl_words(g, 1)
        lines.append(f"| {g['generation']} | {_diff(sft.get('following'), 100, '', 1)} | "
                     f"{_diff(sft.get('hidden_utility'))} | {_diff(rl.get('hidden_utility'))} | "
                     f"{_diff(rl.get('reward'))} | {words} |")
    lines += ["", "## Offline evaluation and the A/B test", "",
              "| gen | win rate user / internal | following deployed -> candidate (base) | violations deployed -> "
              "candidate (base) | A/B breadth | A/B depth | promoted |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for g in gens:
        wr = g["win_rate"] or {}
        lines.append(f"| {g['generation']} | {_pct(wr.get('user'), 0)} / {_pct(wr.get('internal'), 0)} "
                     f"(n={wr.get('n_user', '')}/{wr.get('n_internal', '')}) | "
                     f"{_pct(g['deployed']['instruction_following_rate'])} -> "
                     f"{_pct(g['candidate']['instruction_following_rate'])} "
                     f"({_pct(g['base']['instruction_following_rate'])}) | {_pct(g['deployed']['violation_rate'])} -> "
                     f"{_pct(g['candidate']['violation_rate'])} ({_pct(g['base']['violation_rate'])}) | "
                     f"{_lift(g['breadth'])} | {_lift(g['depth'])} | {'**yes**' if g['promoted'] else 'no'} |")
    lines += ["", "Gate and decision, per generation:", ""]
    for g in gens:
        reasons = (_get(g, "gate", "reasons") or []) + (g["decision"] or [])[1:]
        lines.append(f"- generation {g['generation']}: " + "; ".join(reasons))
    lines += ["", "Style of each candidate (held-out replies): " + "; ".join(
        f"gen {g['generation']}: " + ", ".join(f"{k} {v:.2f}" for k, v in g["style"].items() if v is not None)
        for g in gens), ""]
    lines += ["## Where the run ended", ""]
    if c.get("steerability"):
        s = c["steerability"]
        lines.append(f"- The last promoted candidate (generation {summary['last_promoted']}) against the base model: "
                     f"instruction following {_pct(s['following'][0])} -> {_pct(s['following'][1])} "
                     f"({s['following_gain_points']:+.1f} points {_ci(s['following_gain_ci'], 1, ' pts', True)}), "
                     f"violations {_pct(s['violation'][0])} -> {_pct(s['violation'][1])}.")
    else:
        lines.append("- No generation was promoted.")
    if c.get("cumulative_depth"):
        d, b = c["cumulative_depth"], c["cumulative_breadth"]
        lines.append(f"- Cumulative A/B test, generation {summary['last_promoted']} against the base model: depth "
                     f"{100 * d['lift']:+.1f} % {_ci(d['ci95'], sign=True)} (user-level only "
                     f"{_ci(d['ci95_users'], sign=True)}), breadth {100 * b['lift']:+.1f} % {_ci(b['ci95'], sign=True)}.")
    lines.append(f"- RL raised the held-out hidden utility (interval above zero, length within 30 %) in "
                 f"{c['rl_raises_utility']} of {c['rl_generations']} generations.")
    lines += ["", "## Wall time per notebook (seconds)", "", "| notebook | " + " | ".join(
        f"gen_{g['generation']}" for g in gens) + " |", "| --- |" + " ---: |" * len(gens)]
    names = sorted({k.split("/", 1)[1] for k in summary["timings"]})
    for name in names:
        cells = [str(summary["timings"].get(f"gen_{g['generation']}/{name}", "")) for g in gens]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["versions"].items()) if v), ""]
    return "\n".join(lines)


def write_report(run_dir) -> Path:
    """RUN_DIR/report.md and its PNG figures, from the run's files."""
    run = Run(run_dir)
    if not run.manifest_path.exists():
        raise KitError(f"{run.root}: no manifest.json (not a flywheel run directory)")
    summary = run_summary(run)
    if not summary["generations"]:
        raise KitError(f"{run.root}/manifest.json: no generation has run yet")
    figures = _figures(summary, run.root)
    path = write_text(run.root / "report.md", report_markdown(summary, figures))
    return path


def compare_markdown(run_dirs: list) -> str:
    """The headline questions of several runs (e.g. seeds 0, 1, 2) side by side."""
    rows = []
    for d in run_dirs:
        s = run_summary(Run(d))
        rows.append((s, criteria(s)))
    labels = [f"seed {s['parameters'].get('seed')}" for s, _ in rows]
    if len(set(labels)) < len(labels):   # two runs of one seed (e.g. one setting against another): name the runs
        labels = [f"{Path(d).name} ({label})" for d, label in zip(run_dirs, labels)]
    head = "| | " + " | ".join(labels) + " |"
    lines = [head, "| --- |" + " --- |" * len(rows)]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(s, c) for s, c in rows) + " |")

    def rm_cell(s, gen):
        g = next((x for x in s["generations"] if x["generation"] == gen), None)
        if not g or not g["rm_consensus"]:
            return ""
        rc = g["rm_consensus"]
        return (f"{_pct(rc['accuracy'], 0)} {_ci(rc['ci95'])} (n={rc['n']}); rho {g['rm_spearman']:+.2f} "
                f"(p {g['rm_spearman_p']:.1g}); ceiling {_pct(g['ceiling_consensus'], 0)}")

    for gen in sorted({g["generation"] for s, _ in rows for g in s["generations"]}):
        row(f"reward model, gen {gen}: consensus accuracy; Spearman with hidden utility", lambda s, c: rm_cell(s, gen))
    for gen in sorted({g["generation"] for s, _ in rows for g in s["generations"]}):
        row(f"RL vs its start, gen {gen}: hidden utility; words",
            lambda s, c: next((f"{_diff(g['rl_vs_start']['hidden_utility'])}; "
                               f"{g['rl_start']['mean_words']:.0f} -> {g['rl_end']['mean_words']:.0f}"
                               for g in s["generations"] if g["generation"] == gen and g["rl_vs_start"]), ""))
    row("promoted generations", lambda s, c: ", ".join(map(str, c["promoted"])) or "none")
    row("last promoted vs base: instruction following",
        lambda s, c: "" if not c.get("steerability") else
        f"{_pct(c['steerability']['following'][0])} -> {_pct(c['steerability']['following'][1])} "
        f"(paired difference {c['steerability']['following_gain_points']:+.1f} pts "
        f"{_ci(c['steerability']['following_gain_ci'], scale=1.0, sign=True)})")
    row("last promoted vs base: violation rate",
        lambda s, c: "" if not c.get("steerability") else
        f"{_pct(c['steerability']['violation'][0])} -> {_pct(c['steerability']['violation'][1])} "
        f"({100 * c['steerability']['violation_relative_change']:+.0f} %)")
    row("cumulative A/B depth lift (95 %, with reply noise)",
        lambda s, c: "" if not c.get("cumulative_depth") else
        f"{100 * c['cumulative_depth']['lift']:+.1f} % {_ci(c['cumulative_depth']['ci95'], sign=True)}")
    row("cumulative A/B breadth lift",
        lambda s, c: "" if not c.get("cumulative_breadth") else
        f"{100 * c['cumulative_breadth']['lift']:+.1f} % {_ci(c['cumulative_breadth']['ci95'], sign=True)}")
    row("minutes of notebooks (2 cores)", lambda s, c: f"{c['minutes']}")
    return "\n".join(lines) + "\n"


RESULTS_MARKERS = ("<!-- results -->", "<!-- /results -->")


def with_results(text: str, table: str, links: list[str], where: str = "the text") -> str:
    """`text` (the README) with `table` (compare_markdown's) and links to each run's report between its
    RESULTS_MARKERS; `where` names it in an error. Nothing else of the text changes."""
    start, end = RESULTS_MARKERS
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise KitError(f"{where}: expected one {start} line and one {end} after it, around the results")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    body = (table.rstrip() + "\n\nEvery figure is read from the runs' `metrics.json` and `manifest.json` by "
            "`python -m kit report`; each run's own report: " + ", ".join(links) + ".")
    return f"{head}{start}\n{body}\n{end}{tail}"


def publish(run_dir, dest) -> list[Path]:
    """Copy a run's metrics.json files, manifest.json and report (no weights, no datasets) to `dest` in the run
    directory's own layout, so its figures can be checked against the files. Such files an earlier publish left in
    `dest` that this run has not are removed: the folder holds one run."""
    run = Run(run_dir)
    dest = Path(dest)
    copied = []
    for path in [run.manifest_path, *sorted(run.root.glob("gen_*/**/metrics.json")),
                 *sorted(run.root.glob("report*"))]:
        target = dest / path.relative_to(run.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    # what an earlier run published here and this one did not write (a cumulative test at another generation)
    for stale in [*dest.glob("gen_*/**/metrics.json"), *dest.glob("report*")]:
        if stale not in copied:
            stale.unlink()
    for folder in sorted(dest.glob("gen_*/**/"), key=lambda f: len(f.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return copied


# ---------------------------------------------------------------------------------------------- the lessons
# What each lesson (a scenario of kit.config.SCENARIOS) is designed to show; `python -m kit report ... --lessons
# OUT.md --baseline RUN` says, per lesson, whether its run showed it against a run without it (lesson_findings).
LESSONS: dict[str, str] = {
    "overfit": "the reward-model win rate past 65 % while A/B depth falls; the gate blocks",
    "emoji": "the candidates' emoji rate surges",
    "single_rater": "no consensus split: evaluation cannot separate the models",
    "off_policy": "a smaller RL gain",
}

def _gate_cell(g: dict) -> str:
    return "promote" if _get(g, "gate", "promote") else "blocks: " + "; ".join(
        r[len("BLOCK: "):] for r in (_get(g, "gate", "reasons") or []) if r.startswith("BLOCK"))


def _overlap(a: dict | None, b: dict | None) -> bool:
    return bool(a and b) and a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1]


def lesson_findings(scenario: str, lesson: dict, base: dict) -> dict:
    """What a lesson's run showed against a run without it (`generation_summary` of the same generation, same
    profile and seed): the measures the lesson is about, side by side, and whether the run showed what the lesson
    is designed to show (`LESSONS`), by the rule stated in `rule`."""
    if scenario not in LESSONS:
        raise KitError(f"lesson {scenario!r}: not one of {', '.join(LESSONS)}")
    rows, notes = [], []

    def row(measure, fn):
        rows.append((measure, fn(lesson), fn(base)))

    rl = lambda g, k: _get(g, "rl_vs_start", k)  # noqa: E731
    if scenario == "overfit":
        row("reward-model win rate, user prompts (gate window 50-65 %)", lambda g: _pct(_get(g, "win_rate", "user"), 0))
        row("A/B depth lift (95 %)", lambda g: _lift(g["depth"]))
        row("gate", _gate_cell)
        row("RL: reward it optimised", lambda g: _diff(rl(g, "reward")))
        row("RL: hidden utility", lambda g: _diff(rl(g, "hidden_utility")))
        row("RL: words", _rl_words)
        wr, depth = _get(lesson, "win_rate", "user"), lesson["depth"]
        shown = wr is not None and wr > 0.65 and bool(depth) and depth["lift"] < 0 and not _get(lesson, "gate",
                                                                                              "promote")
        rule = "win rate above 65 %, A/B depth lift below zero, and the gate does not promote"
    elif scenario == "emoji":
        row("emoji per reply, kept / not kept by rejection sampling", lambda g: "" if not g["rs_emoji"] else
            f"{g['rs_emoji']['mean_accepted']:.2f} / {g['rs_emoji']['mean_rejected']:.2f}")
        row("candidate's emoji rate (held-out replies)", lambda g: _pct(g["style"]["emoji_rate"], 0))
        row("RL: emoji rate start -> end", lambda g: "" if g["rl_emoji"][0] is None else
            f"{_pct(g['rl_emoji'][0], 0)} -> {_pct(g['rl_emoji'][1], 0)}")
        row("style features the reward model prefers (flagged)", lambda g: ", ".join(g["rm_flagged"] or []) or "none")
        row("A/B depth lift (95 %)", lambda g: _lift(g["depth"]))
        new, old = lesson["style"]["emoji_rate"] or 0.0, base["style"]["emoji_rate"] or 0.0
        shown = new >= 2 * old and new >= old + 0.10
        rule = "the candidate's emoji rate at least doubles and rises by at least 10 points"
    elif scenario == "single_rater":
        row("consensus pairs for evaluation", lambda g: str(g["consensus_pairs"] if g["consensus_pairs"] is not None
                                                            else ""))
        row("reward model on consensus pairs", lambda g: "none to score" if not _get(g, "rm_consensus", "n") else
            f"{_pct(g['rm_consensus']['accuracy'])} {_ci(g['rm_consensus']['ci95'])} (n={g['rm_consensus']['n']})")
        row("reward model on single-rater pairs", lambda g: "none to score" if not _get(g, "rm_single", "n") else
            f"{_pct(g['rm_single']['accuracy'])} {_ci(g['rm_single']['ci95'])} (n={g['rm_single']['n']})")
        row("reward-model win rate, user prompts", lambda g: "" if _get(g, "win_rate", "user") is None else
            f"{_pct(g['win_rate']['user'], 0)} (n={g['win_rate'].get('n_user', '')})")
        row("gate", _gate_cell)
        held = next((m for m in (lesson["rm_consensus"], lesson["rm_single"]) if m and m.get("n")), None)
        shown = not lesson["consensus_pairs"] and (not held or held["ci95"][0] <= 0.5)
        rule = "no consensus pairs, and the reward model's held-out accuracy cannot be told from chance (95 % " \
               "interval reaches 50 %)"
    else:  # off_policy
        row("RL prompts chosen by", lambda g: g["rl_prompts"] or "")
        row("RL: reward it optimised", lambda g: _diff(rl(g, "reward")))
        row("RL: hidden utility", lambda g: _diff(rl(g, "hidden_utility")))
        row("RL: words", _rl_words)
        new, old = rl(lesson, "hidden_utility"), rl(base, "hidden_utility")
        shown = bool(new and old) and new["diff"] < old["diff"]
        rule = "RL's hidden-utility gain is smaller than without the lesson"
        if _overlap(new, old):
            notes.append("the two gains' 95 % intervals overlap: at this size one run cannot tell them apart")
    return {"scenario": scenario, "designed_to_show": LESSONS[scenario], "rows": rows, "shown": shown,
            "rule": rule, "notes": notes}


def _lesson_summary(run: Run, g: int) -> dict:
    """generation_summary plus what only the lessons read."""
    s = generation_summary(run, g)
    read = lambda stage, sub=None: run.read_metrics(g, stage, sub) if run.has_metrics(g, stage, sub) else {}  # noqa
    rl, rm, ann, rs = read("policy", "rl"), read("rewards"), read("annotation"), read("policy", "rs")
    s["rl_emoji"] = (_get(rl, "held_out", "start", "emoji_rate"), _get(rl, "held_out", "rl", "emoji_rate"))
    s["rl_prompts"] = _get(rl, "prompts", "chosen_by")
    s["rm_flagged"] = rm.get("flagged_style_features")
    s["consensus_pairs"] = ann.get("consensus_pairs")
    s["rs_emoji"] = next((r for r in rs.get("style") or [] if r.get("feature") == "emoji"), None)
    return s


def _recorded(run: Run, g: int, stage: str, prefix: str) -> dict | None:
    """The `<prefix>*` settings the policy stage `stage` (sft: notebook 04, rl: notebook 05) recorded at generation
    g (None: that stage recorded nothing)."""
    if not run.has_metrics(g, "policy", stage):
        return None
    return {k: v for k, v in (run.read_metrics(g, "policy", stage).get("config") or {}).items()
            if k.startswith(prefix)}


def _sft_recorded(run: Run, g: int) -> dict | None:
    """The `sft_*` settings notebook 04 recorded at generation g (None: no SFT recorded)."""
    return _recorded(run, g, "sft", "sft_")


def _sft_settings_differ(run: Run, base_run: Run, g: int) -> list[str]:
    """The SFT settings (`sft_*` of the configuration notebook 04 recorded) in which `run` differs from `base_run`,
    as 'key=value (baseline: value)'; none where either recorded no SFT. A setting only one of them recorded (a run
    from before the setting existed) is not compared."""
    a, b = _sft_recorded(run, g), _sft_recorded(base_run, g)
    if a is None or b is None:
        return []
    return [f"{k}={a.get(k)!r} (baseline: {b.get(k)!r})" for k in sorted(set(a) & set(b)) if a[k] != b[k]]


def _rl_recorded(run: Run, g: int) -> dict | None:
    """The `rl_*` settings notebook 05 recorded at generation g (None: no RL recorded)."""
    return _recorded(run, g, "rl", "rl_")


def _rl_settings_differ(run: Run, base_run: Run, g: int, scenario: str) -> list[str]:
    """The RL settings in which `run` differs from `base_run` at generation g, leaving out those its scenario sets
    (`rl_steps_scale` sets `rl_steps`), as 'key=value (baseline: value)'; as `_sft_settings_differ`."""
    from .config import scenario_parameters

    own = {k.removesuffix("_scale") for k in scenario_parameters(scenario, "05_dpo_rl")}
    a, b = _rl_recorded(run, g), _rl_recorded(base_run, g)
    if a is None or b is None:
        return []
    return [f"{k}={a[k]!r} (baseline: {b[k]!r})" for k in sorted(set(a) & set(b) - own) if a[k] != b[k]]


def _policy_unlike_defaults(run: Run, g: int, profile) -> list[str]:
    """The SFT and RL settings `run` recorded at generation g that the profile's defaults no longer have, each as
    'key value (now: value)': every `sft_*` default, one it did not record included (it predates it), and the
    `rl_*` settings notebook 05 recorded (a run that recorded no SFT: none)."""
    import dataclasses

    from .config import PROFILES, PolicyConfig, stage_config

    recorded = _sft_recorded(run, g)
    if profile not in PROFILES or recorded is None:
        return []
    now = dataclasses.asdict(stage_config(PolicyConfig, profile))
    out = [f"{k} {recorded[k]!r} (now: {now[k]!r})" if k in recorded else f"{k} not recorded (now: {now[k]!r})"
           for k in sorted(now) if k.startswith("sft_") and recorded.get(k, None) != now[k]]
    rl = _rl_recorded(run, g) or {}
    out += [f"{k} {v!r} (now: {now[k]!r})" for k, v in sorted(rl.items()) if k in now and v != now[k]]
    return out


def lessons_markdown(lesson_dirs: list, baseline_dir, generation: int = 0, links: list[str] | None = None) -> str:
    """Each lesson run (its manifest names the scenario) against `baseline_dir`, a run of the same profile and seed
    without a scenario, at `generation`: what the lesson is designed to show, the measures side by side, and whether
    it showed. `links`: where each lesson's report.md is, relative to the page (none: no link)."""
    base_run = Run(baseline_dir)
    bp = base_run.manifest().get("parameters", {})
    if bp.get("scenario", "none") != "none":
        raise KitError(f"{base_run.root}: the baseline ran scenario {bp.get('scenario')!r}; give a run without one")
    base = _lesson_summary(base_run, generation)
    lines = [f"# The lessons at the `{bp.get('profile')}` profile", "",
             f"Generation {generation} of each lesson's run against `{Path(baseline_dir).name}` (profile "
             f"`{bp.get('profile')}`, seed {bp.get('seed')}, no scenario). Every figure is read from the runs' "
             "`metrics.json` files by `python -m kit report ... --lessons`; what a lesson is designed to show is "
             "not guaranteed at a small scale, and \"shown\" applies the rule stated under each table.", ""]
    stale = _policy_unlike_defaults(base_run, generation, bp.get("profile"))
    if stale:
        lines += [f"These runs' SFT and RL settings are not the `{bp.get('profile')}` profile's defaults now: "
                  f"{'; '.join(stale)}. `bash scripts/lessons.sh` and a baseline run at the defaults show the "
                  "lessons as the kit runs them now.", ""]
    for k, d in enumerate(lesson_dirs):
        run = Run(d)
        p = run.manifest().get("parameters", {})
        scenario = p.get("scenario", "none")
        if scenario == "none":
            raise KitError(f"{run.root}: ran no scenario (not a lesson)")
        for key in ("profile", "seed", "model_name"):
            if p.get(key) != bp.get(key):
                raise KitError(f"{run.root}: {key} {p.get(key)!r}, but the baseline's is {bp.get(key)!r}; compare "
                               "runs of the same profile, seed and model")
        differ = _sft_settings_differ(run, base_run, generation)
        if differ:
            raise KitError(f"{run.root}: SFT ran with {', '.join(differ)} unlike the baseline (no scenario changes "
                           "SFT); compare runs of the same defaults")
        differ = _rl_settings_differ(run, base_run, generation, scenario)
        if differ:
            raise KitError(f"{run.root}: RL ran with {', '.join(differ)} unlike the baseline, which the {scenario!r} "
                           "scenario does not set; compare runs of the same defaults")
        f = lesson_findings(scenario, _lesson_summary(run, generation), base)
        lines += [f"## `{scenario}`: {f['designed_to_show']}", "",
                  f"**{'Shown' if f['shown'] else 'Not shown'}** at this profile and seed"
                  + (f" ([its report]({links[k]}))." if links else "."), "",
                  f"| | {scenario} | without it |", "| --- | --- | --- |"]
        lines += [f"| {m} | {a} | {b} |" for m, a, b in f["rows"]]
        lines += ["", f"Rule: {f['rule']}." + "".join(f" Note: {n}." for n in f["notes"]), ""]
    return "\n".join(lines)
