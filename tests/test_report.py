"""The run's report: written from the run's own files, every headline figure traceable to a metrics.json."""
import json

import pytest

from kit import report
from kit.errors import KitError


@pytest.mark.slow
def test_report_is_written_from_the_runs_metrics(tiny_flywheel, tmp_path):
    run = tiny_flywheel
    path = report.write_report(run.root)
    text = path.read_text()
    for png in ("report_trajectory.png", "report_gate_and_utility.png"):
        assert (run.root / png).stat().st_size > 1000 and f"({png})" in text
    summary = report.run_summary(run)
    rm = json.loads(run.metrics_path(1, "rewards").read_text())
    acc = rm["accuracy"]["pointwise"]["consensus"]["accuracy"]
    assert summary["generations"][1]["rm_consensus"]["accuracy"] == acc
    if acc is not None:
        assert f"{100 * acc:.1f} %" in text
    assert "## Wall time per notebook" in text and "02_curation" in text
    assert all(k in report.criteria(summary) for k in ("rm_learns", "rl_raises_utility", "promoted", "minutes"))
    table = report.compare_markdown([run.root, run.root])
    assert table.count("seed 0") == 2 and "cumulative A/B depth lift" in table
    assert f"| {run.root.name} (seed 0) |" in table, "two runs of one seed are told apart by their names"
    copied = report.publish(run.root, tmp_path / "pub")
    assert (tmp_path / "pub" / "manifest.json").exists() and (tmp_path / "pub" / "report.md").exists()
    assert all(p.suffix in (".json", ".md", ".png") for p in copied)
    assert not list((tmp_path / "pub").rglob("*.safetensors")), "no weights"


def test_report_says_when_the_run_had_uncommitted_changes():
    sha = "86fd20859046a417debe9e88c6f10eaacd9d7982"
    assert report._commit_said(sha) == "`86fd20859046`"
    assert report._commit_said(sha + "-dirty").startswith("`86fd20859046` with uncommitted changes")
    assert report._commit_said(None) == "`unknown`"


def test_publishing_over_an_earlier_run_leaves_none_of_its_files(tmp_path):
    from pathlib import Path

    run = Path(__file__).resolve().parents[1] / "docs" / "results" / "cpu-seed1"
    stale = tmp_path / "pub" / "gen_2" / "ab" / "cumulative" / "metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    (tmp_path / "pub" / "notes.txt").write_text("mine")
    copied = report.publish(run, tmp_path / "pub")
    assert not stale.exists() and not stale.parent.exists(), "the earlier run's file and its empty folder are gone"
    assert (tmp_path / "pub" / "notes.txt").exists(), "only what publish writes is removed"
    assert sorted(p.relative_to(tmp_path / "pub") for p in copied) == sorted(
        p.relative_to(tmp_path / "pub") for p in (tmp_path / "pub").rglob("*") if p.is_file() and p.name != "notes.txt")


def test_report_needs_a_flywheel_run(tmp_path):
    with pytest.raises(KitError, match="no manifest.json"):
        report.write_report(tmp_path)


def test_readme_results_block_is_replaced_and_nothing_else():
    text = "# Kit\n\nintro\n\n<!-- results -->\nold table\n<!-- /results -->\n\n## After\n"
    new = report.with_results(text, "| | seed 0 |\n| --- | --- |\n", ["[s0](docs/results/s0/report.md)"])
    assert new.startswith("# Kit\n\nintro\n\n<!-- results -->\n| | seed 0 |")
    assert new.endswith("<!-- /results -->\n\n## After\n")
    assert "old table" not in new and "[s0](docs/results/s0/report.md)" in new
    assert report.with_results(new, "| | seed 0 |\n| --- | --- |\n", ["[s0](docs/results/s0/report.md)"]) == new
    with pytest.raises(KitError, match="README.md: expected one <!-- results -->"):
        report.with_results("no markers", "", [], "README.md")


def test_report_readme_needs_compare_and_publish_and_writes_nothing_without_them(tmp_path, capsys):
    from kit.cli import main

    readme = tmp_path / "README.md"
    readme.write_text("<!-- results -->\n<!-- /results -->\n")
    assert main(["report", str(tmp_path / "run"), "--readme", str(readme)]) != 0
    assert "--compare" in capsys.readouterr().err and readme.read_text() == "<!-- results -->\n<!-- /results -->\n"


def _as_lesson(src, dest, scenario):
    """A copy of a published run (metrics and manifest only) that says it ran `scenario`."""
    import shutil

    shutil.copytree(src, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["parameters"]["scenario"] = scenario
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_lessons_page_sets_each_lesson_beside_the_baseline_and_applies_its_rule(tmp_path):
    from pathlib import Path

    from kit.flywheel import SCENARIOS
    from kit.report import LESSONS

    assert set(LESSONS) == set(SCENARIOS) - {"none"}, "every lesson says what it is designed to show"

    base = Path(__file__).resolve().parents[1] / "docs" / "results" / "cpu-seed0"
    lessons = [_as_lesson(base, tmp_path / f"lesson-{s}", s) for s in LESSONS]
    text = report.lessons_markdown(lessons, base, links=[f"{p.name}/report.md" for p in lessons])
    for s, claim in LESSONS.items():
        assert f"## `{s}`: {claim}" in text and f"(lesson-{s}/report.md)" in text
    # a lesson identical to its baseline shows nothing that needs a change: no smaller RL gain, no emoji surge
    summary = report._lesson_summary(report.Run(base), 0)
    assert not report.lesson_findings("off_policy", summary, summary)["shown"]
    assert not report.lesson_findings("emoji", summary, summary)["shown"]
    assert text.count("**Not shown**") >= 2
    with pytest.raises(KitError, match="baseline ran scenario"):
        report.lessons_markdown(lessons, lessons[0])
    with pytest.raises(KitError, match="ran no scenario"):
        report.lessons_markdown([base], base)
    # a lesson whose SFT ran with other settings than the baseline's is not a like-for-like comparison
    sft = lessons[0] / "gen_0" / "policy" / "sft" / "metrics.json"
    metrics = json.loads(sft.read_text())
    metrics["config"]["sft_max_steps"] += 1
    sft.write_text(json.dumps(metrics))
    with pytest.raises(KitError, match=r"SFT ran with sft_max_steps=\d+ \(baseline: \d+\)"):
        report.lessons_markdown(lessons[:1], base)
    # a baseline whose SFT is not the profile's defaults now says so on the page, a setting it predates included
    metrics["config"]["sft_max_steps"] = 7
    metrics["config"].pop("sft_open_ends", None)
    sft.write_text(json.dumps(metrics))
    rl = lessons[0] / "gen_0" / "policy" / "rl" / "metrics.json"
    rl_metrics = json.loads(rl.read_text())
    rl_metrics["config"]["rl_follow_weight"] = 0.5
    rl_metrics["config"].pop("rl_beta")                   # a setting notebook 05 did not record is not compared
    rl.write_text(json.dumps(rl_metrics))
    stale = report._policy_unlike_defaults(report.Run(lessons[0]), 0, "cpu")
    from kit.config import PROFILES

    assert f"sft_max_steps 7 (now: {PROFILES['cpu']['sft_max_steps']})" in stale and "sft_open_ends not recorded (now: True)" in stale
    assert f"rl_follow_weight 0.5 (now: {PROFILES['cpu']['rl_follow_weight']})" in stale
    assert not any(s.startswith("rl_beta") for s in stale)
    assert report._policy_unlike_defaults(report.Run(tmp_path / "no-run"), 0, "cpu") == []
    # nor is one whose RL ran otherwise, unless its scenario is what set it (overfit: rl_beta, rl_steps by its scale)
    def rl_set(lesson, **values):
        rl = lesson / "gen_0" / "policy" / "rl" / "metrics.json"
        rl_metrics = json.loads(rl.read_text())
        rl_metrics["config"].update(values)
        rl.write_text(json.dumps(rl_metrics))
        return lesson

    overfit = rl_set(_as_lesson(base, tmp_path / "again-overfit", "overfit"), rl_beta=0.0, rl_steps=36)
    assert "## `overfit`" in report.lessons_markdown([overfit], base)
    off_policy = rl_set(_as_lesson(base, tmp_path / "again-off_policy", "off_policy"), rl_near_policy=False)
    assert "## `off_policy`" in report.lessons_markdown([off_policy], base)
    rl_set(off_policy, rl_temperature=0.5)
    with pytest.raises(KitError, match=r"RL ran with rl_temperature=0.5 \(baseline: 1.0\)"):
        report.lessons_markdown([off_policy], base)


def test_overfit_lesson_rule_needs_the_win_rate_past_the_window_depth_down_and_the_gate_closed():
    def gen(win, depth, promote):
        return {"win_rate": {"user": win}, "depth": {"lift": depth, "ci95": [depth - 0.1, depth + 0.1]},
                "gate": {"promote": promote, "reasons": ["BLOCK: win rate"]}, "rl_vs_start": None,
                "rl_start": {"mean_words": None}, "rl_end": {"mean_words": None}}

    base = gen(0.6, 0.02, True)
    assert report.lesson_findings("overfit", gen(0.8, -0.05, False), base)["shown"]
    assert not report.lesson_findings("overfit", gen(0.6, -0.05, False), base)["shown"]
    assert not report.lesson_findings("overfit", gen(0.8, +0.05, False), base)["shown"]
    assert not report.lesson_findings("overfit", gen(0.8, -0.05, True), base)["shown"]
    with pytest.raises(KitError, match="not one of"):
        report.lesson_findings("none", base, base)


def test_a_generation_without_rl_is_reported_without_rl_figures(tmp_path):
    """rl_algorithm "none": notebook 05 records the start policy's held-out check only. The report, the comparison
    table and the lessons page leave RL's cells empty instead of failing."""
    import shutil
    from pathlib import Path

    base = Path(__file__).resolve().parents[1] / "docs" / "results" / "cpu-seed0"
    run_dir = shutil.copytree(base, tmp_path / "no-rl")
    for g in (0, 1, 2):
        path = run_dir / f"gen_{g}" / "policy" / "rl" / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["held_out"] = {"start": metrics["held_out"]["start"]}
        metrics["training"] = None
        path.write_text(json.dumps(metrics))
    text = report.write_report(run_dir).read_text()
    assert "| 0 | +8.6 [" in text and "RL raised the held-out hidden utility" in text
    assert " -> " not in text.split("## Policy optimisation")[1].split("## Offline")[0]
    summary = report.run_summary(report.Run(run_dir))
    assert report.criteria(summary)["rl_generations"] == 0 and report._rl_words(summary["generations"][0]) == ""
    assert "RL vs its start, gen 0" in report.compare_markdown([run_dir])
