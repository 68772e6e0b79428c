"""Training stages under `accelerate launch` (kit/launch.py): two CPU processes (gloo) train the same kind of adapter
as one process, from the same run directory and config. Small: the tiny profile, SFT on a few examples; DPO and RL
on a copy of the tiny flywheel run (conftest's `tiny_flywheel`, shared with the other tests of the session).

`accelerate launch --cpu --num_processes 2` starts ONE process in accelerate 1.15 (its CPU launcher spreads
processes only through mpirun); `--multi_gpu --num_processes 2` starts two through torchrun, and on a machine
without a GPU the kit's CPU backend (use_cpu) makes them a gloo group."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.data import save_dataset
from kit.paths import Run

ROOT = Path(__file__).resolve().parents[1]
USER = Path(__file__).parent / "user_files"
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def _run_with_an_sft_set(root: Path) -> Run:
    run = Run(root)
    run.update_manifest(parameters={"profile": "tiny", "seed": 0, "model_name": "smollm2-135m-instruct",
                                    "scenario": "none", "generations": 1,
                                    "notebook_parameters": {"cards_dir": str(USER / "cards"), "sft_epochs": 2.0}})
    records = [{"prompt": [{"role": "user", "content": f"can you fix sword number {i}?"}],
                "completion": [{"role": "assistant", "content": "Aye. Leave it on the anvil overnight."}],
                "character_id": "bram", "user_name": "Sam", "origin": "kept"} for i in range(8)]
    save_dataset(records, run.artifact(0, "policy.rs.sft_data"))
    return run


def _train(cmd: list[str], cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", KIT_BATCH="1")
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert res.returncode == 0, (res.stdout[-1500:], res.stderr[-3000:])
    return res.stdout


def _tensors(folder: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        return {k: tuple(f.get_tensor(k).shape) for k in f.keys()}


@pytest.mark.slow
def test_two_processes_train_the_same_kind_of_adapter_as_one(tmp_path):
    from kit.sft import load_adapter_check

    run = _run_with_an_sft_set(tmp_path / "run")
    stage = ["-m", "kit", "train", "sft", "--run-dir", str(run.root), "--generation", "0"]
    one = json.loads(_train([sys.executable, *stage, "--out", str(tmp_path / "one")], tmp_path).splitlines()[-1])
    two = json.loads(_train([*LAUNCH, *stage, "--out", str(tmp_path / "two")], tmp_path).splitlines()[-1])
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["examples"] == two["examples"] == 8
    assert two["backend"] == "transformers-cpu"

    assert _tensors(tmp_path / "one") == _tensors(tmp_path / "two") and _tensors(tmp_path / "one")
    config = [json.loads((tmp_path / d / "adapter_config.json").read_text()) for d in ("one", "two")]
    for c in config:   # PEFT keeps target_modules as a set: its order follows each process's hash seed
        c["target_modules"] = sorted(c["target_modules"])
    assert config[0] == config[1]
    assert {p.name for p in (tmp_path / "two").iterdir()} == {p.name for p in (tmp_path / "one").iterdir()}
    assert load_adapter_check(tmp_path / "two") == "PeftModelForCausalLM"
    assert not (run.root / "gen_0" / "policy" / "sft" / "metrics.json").exists(), "--out: the run's stage untouched"


def test_the_stage_reads_the_runs_settings(tmp_path):
    from kit import launch
    from kit.config import PolicyConfig
    from kit.errors import ParameterError

    run = _run_with_an_sft_set(tmp_path / "run")
    s = launch.settings(run)
    assert (s["profile"], s["seed"]) == ("tiny", 0)
    assert launch.stage_cfg(PolicyConfig, s).sft_epochs == 2.0, "the notebook parameters the run recorded"
    assert launch.settings(run, profile="cpu", seed=3)["seed"] == 3
    with pytest.raises(ParameterError, match="parameter 'profile'"):
        launch.settings(Run(tmp_path / "bare"))


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "rl"])
def test_two_processes_train_the_same_dpo_and_rl_adapters_as_one(stage, tiny_flywheel, tmp_path):
    """Notebook 05's stages from a copy of a real (tiny) run: its DPO patch, its online DPO steps (the default
    algorithm, 2 steps of 1 prompt x 2 samples: each process samples the same replies from the same seed); the
    adapters' tensor names and shapes are compared. The one-process adapter is the one notebook 05 trained in that
    run (the same stage code, config and seed as `kit train` in one process, whose one-process route the SFT test
    above runs)."""
    shutil.copytree(tiny_flywheel.root, tmp_path / "run")
    run = Run(tmp_path / "run")
    # a generation whose notebook 05 trained a DPO patch (a generation without pairs trains none)
    gen = next((g for g in (0, 1) if (run.artifact(g, "policy.dpo.adapter", create=False)
                                      / "adapter_config.json").is_file()), None)
    assert gen is not None, "the tiny flywheel trained no DPO patch in either generation"
    metrics = run.metrics_path(gen, "policy", stage)
    before = metrics.read_bytes()
    one, one_dir = json.loads(before), run.artifact(gen, f"policy.{stage}.adapter", create=False)
    cmd = ["-m", "kit", "train", stage, "--run-dir", str(run.root), "--generation", str(gen)]
    two = json.loads(_train([*LAUNCH, *cmd, "--out", str(tmp_path / "two")], tmp_path).splitlines()[-1])
    assert two["processes"] == 2 and two["backend"] == "transformers-cpu"
    assert _tensors(one_dir) == _tensors(tmp_path / "two") and _tensors(one_dir)
    assert {p.name for p in (tmp_path / "two").iterdir()} == {p.name for p in one_dir.iterdir()}
    if stage == "dpo":
        assert one["pairs"] == two["pairs"] > 0
    else:
        assert one["training"]["algorithm"] == two["algorithm"] == "online_dpo"
        assert two["start_adapter"] == str(run.artifact(gen, "policy.dpo.adapter"))
        assert Path(one["start_adapter"]).relative_to(tiny_flywheel.root) == Path(two["start_adapter"]).relative_to(
            run.root), "the same start adapter: the run's DPO patch (the recorded path is the original run's)"
    assert metrics.read_bytes() == before, "--out: the run's stage untouched"


def test_unknown_stage_and_missing_manifest_are_clear_errors(tmp_path):
    from kit import launch
    from kit.errors import KitError, ParameterError

    assert launch.STAGES == tuple(launch.TRAINERS) == ("rm", "sft", "dpo", "rl")
    with pytest.raises(ParameterError, match="parameter 'stage'"):
        launch.main("ppo", tmp_path, 0)
    with pytest.raises(KitError, match="no manifest.json"):
        launch.main("dpo", tmp_path / "nowhere", 0)


def test_notebook_05_settings_take_the_scenario_and_its_scales(tmp_path):
    """The overfit lesson's parameters reach `train rl` as they reach notebook 05; notebook 04's do not."""
    from kit import launch
    from kit.config import PROFILES, PolicyConfig

    run = Run(tmp_path / "run")
    run.update_manifest(parameters={"profile": "tiny", "seed": 0, "scenario": "overfit",
                                    "notebook_parameters": {"rl_beta": 0.01, "sft_epochs": 3.0}})
    s = launch.settings(run)
    params = launch.notebook_parameters(s, "05_dpo_rl")
    assert params["rl_steps_scale"] == 3.0 and params["rl_loss_type"] == "dapo"
    assert params["rl_beta"] == 0.01, "the user's parameters after the scenario's"
    assert "sft_epochs" not in params
    cfg = launch._policy_stage(s)[1]
    assert cfg.rl_steps == 3 * PROFILES["tiny"]["rl_steps"] and cfg.rl_beta == 0.01
    assert launch.stage_cfg(PolicyConfig, s, "04_sft").sft_epochs == 3.0


def test_rm_with_an_embedding_backbone_refuses_more_than_one_process(tmp_path, monkeypatch):
    from kit import launch
    from kit.errors import KitError

    run = _run_with_an_sft_set(tmp_path / "run")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(KitError, match="embedding reward model.*one process"):
        launch.main("rm", run.root, 0)
