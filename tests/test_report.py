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
    copied = report.publish(run.root, tmp_path / "pub")
    assert (tmp_path / "pub" / "manifest.json").exists() and (tmp_path / "pub" / "report.md").exists()
    assert all(p.suffix in (".json", ".md", ".png") for p in copied)
    assert not list((tmp_path / "pub").rglob("*.safetensors")), "no weights"


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
