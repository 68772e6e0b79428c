"""The main job: 2 generations with the tiny profile, resume, and the scenarios' parameters."""
import pytest

from kit import flywheel
from kit.errors import ParameterError
from kit.notebooks import STAGE_NOTEBOOKS, notebook_path, parameters_of


def test_scenarios_only_name_real_notebook_parameters():
    for scenario, per_notebook in flywheel.SCENARIOS.items():
        for name, params in per_notebook.items():
            assert name in STAGE_NOTEBOOKS
            assert set(params) <= set(parameters_of(notebook_path(name))), (scenario, name)
    with pytest.raises(ParameterError, match="scenario"):
        flywheel.scenario_parameters("nope", "02_curation")


USER = __import__("pathlib").Path(__file__).parent / "user_files"


def test_notebook_parameters_are_checked_and_made_absolute(monkeypatch):
    monkeypatch.chdir(USER)
    params = flywheel.check_parameters({"cards_dir": "cards", "sft_path": {"path": "sharegpt.jsonl",
                                        "columns": {"conversations": "messages", "from": "role", "value": "content",
                                                    "character": "character_id"},
                                        "roles": {"human": "user", "gpt": "assistant"}},
                                        "labels_path": "preferences_trl.jsonl", "ab_log_path": "ab_log_90_10.jsonl",
                                        "ab_arms": {"A": "control", "B": "treatment"}, "sft_lr": 1e-3}, "tiny")
    assert params["cards_dir"] == str(USER / "cards") and params["sft_path"]["path"] == str(USER / "sharegpt.jsonl")
    assert params["labels_path"] == str(USER / "preferences_trl.jsonl") and params["sft_lr"] == 1e-3
    assert not flywheel.needs_hub("smollm2-135m-instruct", params)
    assert flywheel.needs_hub("HuggingFaceTB/SmolLM2-135M-Instruct", {})
    assert flywheel.needs_hub("smollm2-135m-instruct", {"traffic_path": "someone/roleplay-logs"})


def test_the_notebooks_environment_is_set_while_they_run_and_put_back(monkeypatch):
    import os

    monkeypatch.delenv("KIT_BATCH", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with flywheel.environment({"KIT_BATCH": "1", "HF_HUB_OFFLINE": "1"}):
        assert os.environ["KIT_BATCH"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert "KIT_BATCH" not in os.environ and os.environ["HF_HUB_OFFLINE"] == "0"


@pytest.mark.slow
def test_one_generation_on_a_users_own_cast_and_data(tmp_path, capsys):
    """The routes of a user's own data through a batch run: their cards (V1, V2, V3, PNG), real SFT conversations
    (ShareGPT), real preference labels (12 pairs: 9 train, the 3 with held-out openings evaluate) and a real 90/10
    A/B log with its own arm names and timestamps.
    Traffic stays the world's (the imported logs carry no user signals, which the signal models need). RL is off to
    save time: it parses no user file itself (it reads the cast and the reward models trained on the labels, which
    notebooks 03-06 read too), and its route is the tiny run's."""
    spec = {"path": str(USER / "sharegpt.jsonl"), "columns": {"conversations": "messages", "from": "role",
                                                             "value": "content", "character": "character_id"},
            "roles": {"human": "user", "gpt": "assistant"}}
    run = flywheel.run_flywheel(str(tmp_path / "mine"), profile="tiny", generations=1, seed=0, progress=False,
                                parameters={"cards_dir": str(USER / "cards"), "sft_path": spec,
                                            "labels_path": str(USER / "labels.jsonl"),
                                            "ab_log_path": str(USER / "ab_log_90_10.jsonl"),
                                            "ab_arms": {"A": "control", "B": "treatment"},
                                            "ab_split": {"control": 0.9, "treatment": 0.1},
                                            "rl_algorithm": "none"})
    out = capsys.readouterr().out
    assert "HF_HUB_OFFLINE=1" in out and "[gen_0 of 1] 3/6 04_sft: done in" in out
    world = run.read_metrics(0, "world")
    annotation = run.read_metrics(0, "annotation")
    assert world and annotation["labels"].endswith("labels.jsonl") and annotation["train_pairs"] == 9
    from kit.data import load_dataset_dir

    assert len(load_dataset_dir(run.artifact(0, "annotation.eval_consensus"))) == 3, "held-out labels evaluate"
    assert run.read_metrics(0, "policy", "rs")["sft_origins"] == {"imported": 7}
    ab = run.read_metrics(0, "ab")
    assert ab["exposed"] == {"control": 180, "treatment": 20} and ab["srm"] == "ok"
    import json

    executed = json.loads((run.root / "gen_0" / "notebooks" / "02_curation.ipynb").read_text())
    injected = next(c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert str(USER / "cards") in "".join(injected["source"])
    with pytest.raises(ParameterError, match="run_dir"):   # the same directory with other parameters
        flywheel.run_flywheel(str(run.root), profile="tiny", generations=1, seed=0, progress=False)


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
        # online DPO (the default) through TRL's DPOTrainer, anchored to the start adapter, one sampling round a step
        assert rl["algorithm"] == "online_dpo" and rl["beta"] > 0 and rl["steps"] == 2
        assert rl["reference"].startswith("adapter 'ref'") and len(rl["curves"]["reward"]) == rl["steps"]
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


def test_a_failing_notebook_stops_the_flywheel_with_one_line(failing_notebook, tmp_path, monkeypatch, capsys):
    from kit.cli import main

    monkeypatch.setattr(flywheel, "SETUP_NOTEBOOKS", (failing_notebook,))
    monkeypatch.setattr(flywheel, "STAGE_NOTEBOOKS", ())
    monkeypatch.setattr(flywheel, "FINAL_NOTEBOOKS", ())
    run = tmp_path / "run"
    assert main(["flywheel", "--run-dir", str(run), "--profile", "tiny", "--generations", "1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert errors[0].startswith("error: notebook fails (generation 0) failed at cell In [4] (raise ValueError(")
    assert "ValueError: the second cell broke" in errors[0]
    assert (run / "gen_0" / "notebooks" / "fails.failed.ipynb").exists()
    assert "fails" not in flywheel.Run(run).generation_status(0).get("notebooks_done", [])


def _whole(root) -> list[str]:
    """Every artifact at its final name in a run directory reads back whole: JSON parses, JSONL parses line by
    line, datasets load. Returns the temporaries (.<name>.tmp-<pid>-*) found, which are not artifacts."""
    import json

    from kit.data import load_dataset_dir

    temporaries = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(".tmp-" in part for part in rel.parts):
            if ".tmp-" in rel.parts[-1]:
                temporaries.append(str(rel))
            continue
        if path.suffix in (".json", ".ipynb") and path.is_file() and path.parent.name != "adapter":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        elif path.is_dir() and (path / "state.json").exists():
            load_dataset_dir(path)
    return temporaries


@pytest.mark.slow
def test_a_stage_killed_mid_run_leaves_no_half_artifact_and_reruns_to_the_same_results(tmp_path, tiny_flywheel):
    """Notebook 02 at the tiny profile, killed with SIGKILL (kernel and all) once it has written its traffic, that is
    while it curates and annotates: every artifact at its final name is whole, and the same command run again
    removes what the killed run left and ends with the results of an uninterrupted run (the tiny flywheel's
    generation 0, the same notebook with the same profile and seed)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from kit.data import load_dataset_dir

    code = ("import sys\nfrom kit.notebooks import execute\nfrom kit.paths import Run\nrun = Run(sys.argv[1])\n"
            "execute('02_curation', run, 0, dict(run_dir=str(run.root), generation=0, profile='tiny', seed=0), "
            "progress=False)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))

    def stage(root):   # its own process group, so the kernel dies with it
        return subprocess.Popen([sys.executable, "-c", code, str(root)], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ref, killed = tiny_flywheel.root, tmp_path / "killed"
    proc = stage(killed)
    marker = killed / "gen_0" / "traffic" / "metrics.json"
    deadline = time.time() + 600
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the stage ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "gen_0" / "notebooks" / "02_curation.ipynb").exists()
    left = _whole(killed)
    assert any("02_curation.ipynb.tmp-" in t for t in left), left   # it was killed mid-run

    proc = stage(killed)
    assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]
    assert _whole(killed) == [], "the rerun removed what the killed run left"
    for stage_name in ("traffic", "curation", "annotation"):
        a, b = (json.loads((root / "gen_0" / stage_name / "metrics.json").read_text()) for root in (ref, killed))
        assert a == b, stage_name
    for name in ("curation/train_prompts", "curation/eval_prompts", "annotation/train_pairs",
                 "annotation/eval_pairs"):
        assert load_dataset_dir(ref / "gen_0" / name).to_list() == load_dataset_dir(killed / "gen_0" / name).to_list()


def test_steerability_from_base_puts_the_base_model_before_every_candidate():
    import pandas as pd

    traj = pd.DataFrame({"generation": [0, 1], "instruction_following": [0.8, 0.9], "violation_rate": [0.3, 0.2],
                         "deployed_instruction_following": [0.7, 0.8], "deployed_violation_rate": [0.4, 0.3]})
    steer = flywheel.steerability_from_base(traj)
    assert steer["policy"].tolist() == ["base", "gen 0 candidate", "gen 1 candidate"]
    assert steer["instruction_following"].tolist() == [0.7, 0.8, 0.9]
    assert steer["violation_rate"].tolist() == [0.4, 0.3, 0.2]
    assert flywheel.steerability_from_base(pd.DataFrame({"generation": [0]})) is None, "no evaluation yet"
    assert flywheel.steerability_from_base(pd.DataFrame()) is None
