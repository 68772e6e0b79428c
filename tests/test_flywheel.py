"""The main job: 2 generations with the tiny profile, the decision rule, resume, and the scenarios' parameters."""
import pytest

from kit import flywheel
from kit.errors import ParameterError
from kit.notebooks import STAGE_NOTEBOOKS, notebook_path, parameters_of


def _ab(depth_lift, depth_ci, breadth_ci=(-0.1, 0.1), srm=0.5):
    return {"depth": {"lift": depth_lift, "ci95": list(depth_ci)}, "breadth": {"lift": 0.0, "ci95": list(breadth_ci)},
            "srm_p_value": srm}


def test_decision_needs_the_gate_and_the_ab_test():
    ok = {"promote": True, "reasons": []}
    assert flywheel.decide(ok, _ab(0.05, (0.01, 0.09)))["promote"]
    assert not flywheel.decide({"promote": False}, _ab(0.05, (0.01, 0.09)))["promote"]
    assert not flywheel.decide(ok, _ab(-0.01, (-0.05, 0.03)))["promote"]
    assert not flywheel.decide(ok, _ab(0.05, (0.01, 0.09), breadth_ci=(-0.2, -0.01)))["promote"]
    d = flywheel.decide(ok, _ab(0.05, (0.01, 0.09), srm=1e-6))
    assert not d["promote"] and any("sample-ratio" in r for r in d["reasons"])


def test_scenarios_only_name_real_notebook_parameters():
    for scenario, per_notebook in flywheel.SCENARIOS.items():
        for name, params in per_notebook.items():
            assert name in STAGE_NOTEBOOKS
            assert set(params) <= set(parameters_of(notebook_path(name))), (scenario, name)
    with pytest.raises(ParameterError, match="scenario"):
        flywheel.scenario_parameters("nope", "02_curation")


@pytest.mark.slow
def test_tiny_flywheel_two_generations(tiny_flywheel):
    run = tiny_flywheel
    manifest = run.manifest()
    assert manifest["finished"] and set(manifest["generations"]) >= {"0", "1"}
    for g in (0, 1):
        status = manifest["generations"][str(g)]
        assert status["candidate_adapter"] and "gate" in status and "decision" in status
        ev = run.read_metrics(g, "eval")
        assert {"instruction_following_rate", "violation_rate", "win_rate", "gate"} <= set(ev)
        assert set(ev["win_rate"]["pointwise"]) >= {"user", "internal"}
        assert set(ev["gate"]) == {"promote", "reasons"} and ev["gate"]["reasons"]
        ab = run.read_metrics(g, "ab")
        for m in ("breadth", "depth"):
            assert {"control", "treatment", "lift", "ci95"} <= set(ab[m])
        assert 0 <= ab["srm_p_value"] <= 1
        for sub in ("rs", "sft", "rl"):
            assert run.has_metrics(g, "policy", sub)
        rl = run.read_metrics(g, "policy", "rl")["training"]
        # GRPO through TRL with the loss type and KL coefficient set explicitly, anchored to the start adapter
        assert rl["algorithm"] == "grpo" and rl["loss_type"] == "grpo" and rl["beta"] > 0
        assert rl["reference"].startswith("adapter 'ref'") and rl["curves"]["reward"] and rl["curves"]["kl"]
    traj = flywheel.trajectory(run)
    assert len(traj) == 2 and "depth_lift" in traj
    if manifest["last_promoted"] is not None:
        assert flywheel.cumulative(run)["depth"]["lift"] is not None


@pytest.mark.slow
def test_rerun_resumes_without_running_anything(tiny_flywheel, capsys):
    flywheel.run_flywheel(str(tiny_flywheel.root), profile="tiny", generations=2, seed=0, progress=False)
    out = capsys.readouterr().out
    assert "running" not in out and out.count("skipped (resume)") >= 13
    with pytest.raises(ParameterError, match="run_dir"):
        flywheel.run_flywheel(str(tiny_flywheel.root), profile="tiny", generations=2, seed=1, progress=False)


@pytest.mark.slow
def test_stage_timing_bench_reads_the_run(tiny_flywheel):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_stages", Path(__file__).parents[1] / "bench" / "stages.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.run_table(tiny_flywheel.root)
    assert table["profile"] == "tiny" and table["generations"] == ["gen_0", "gen_1"]
    assert set(table["stages"]["04_sft"]) == {"gen_0", "gen_1"} and table["stages"]["01_world"].keys() == {"gen_0"}
    assert table["total_seconds"] > 0
    assert table["total_seconds"] == pytest.approx(sum(table["per_generation"].values()), abs=0.2)
    md = bench.markdown([table], bench.device())
    assert "| 04_sft |" in md and "profile tiny" in md
