"""Training stages under `accelerate launch` (kit/launch.py): two CPU processes (gloo) train the same kind of adapter
as one process, from the same run directory and config. Small: the tiny profile, SFT on a few examples.

`accelerate launch --cpu --num_processes 2` starts ONE process in accelerate 1.15 (its CPU launcher spreads
processes only through mpirun); `--multi_gpu --num_processes 2` starts two through torchrun, and on a machine
without a GPU the kit's CPU backend (use_cpu) makes them a gloo group."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit.data import save_dataset
from kit.paths import Run

ROOT = Path(__file__).resolve().parents[1]
USER = Path(__file__).parent / "user_files"


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


@pytest.mark.slow
def test_two_processes_train_the_same_kind_of_adapter_as_one(tmp_path):
    from safetensors import safe_open

    from kit.sft import load_adapter_check

    run = _run_with_an_sft_set(tmp_path / "run")
    stage = ["-m", "kit", "train", "sft", "--run-dir", str(run.root), "--generation", "0"]
    one = json.loads(_train([sys.executable, *stage, "--out", str(tmp_path / "one")], tmp_path).splitlines()[-1])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    two = json.loads(_train([*launch, *stage, "--out", str(tmp_path / "two")], tmp_path).splitlines()[-1])
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["examples"] == two["examples"] == 8
    assert two["backend"] == "transformers-cpu"

    def tensors(folder):
        with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
            return {k: tuple(f.get_tensor(k).shape) for k in f.keys()}

    assert tensors(tmp_path / "one") == tensors(tmp_path / "two") and tensors(tmp_path / "one")
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
