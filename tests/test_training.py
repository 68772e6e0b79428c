from types import SimpleNamespace

from kit import training


def test_base_args_follow_the_backend_and_never_checkpoint():
    args = training.base_args("/tmp/x", 3, batch_size=4, epochs=2.0, lr=1e-4)
    assert args["use_cpu"] and not args["bf16"] and not args["fp16"]       # the CPU backend here
    assert args["save_strategy"] == "no" and args["report_to"] == [] and args["seed"] == 3
    assert args["gradient_accumulation_steps"] == 1, "tokens per step are what the batch says"
    one = training.base_args("/tmp/x", 0, batch_size=2, lr=1e-4, max_steps=1, schedule="constant", warmup=0.0)
    assert one["max_steps"] == 1 and one["warmup_steps"] == 0.0 and "num_train_epochs" not in one


def test_losses_and_history_read_the_trainer_log():
    log = [{"loss": 0.7, "reward": 0.1, "kl": 0.0}, {"loss": 0.6, "reward": 0.3, "kl": 0.01},
           {"train_runtime": 3.0, "train_loss": 0.65}]
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=log))
    assert training.losses(trainer) == [0.7, 0.6]
    assert training.history(trainer, ("reward", "kl", "missing")) == {"reward": [0.1, 0.3], "kl": [0.0, 0.01]}


def test_reporting_is_off_unless_asked_and_needs_its_tracker(tmp_path, monkeypatch):
    import importlib.util

    import pytest

    from kit.errors import ParameterError
    from kit.paths import Run

    training.track(None)
    assert training.base_args("/tmp/x", 0, batch_size=1, lr=1e-4)["report_to"] == []
    with pytest.raises(ParameterError, match="parameter 'report_to': expected one of tensorboard, trackio"):
        training.track("wandb")
    real = importlib.util.find_spec
    missing = lambda name, *a: None if name in ("tensorboard", "tensorboardX", "trackio") else real(name, *a)  # noqa
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ParameterError, match="pip install tensorboard"):
        training.track("tensorboard")
    found = lambda wanted: lambda name, *a: object() if name == wanted else real(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", found("tensorboard"))
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    run = Run(tmp_path / "run")
    training.track("tensorboard", run, 2, "04_sft")
    first, second = (training.base_args("/tmp/x", 0, batch_size=1, lr=1e-4) for _ in range(2))
    assert first["report_to"] == ["tensorboard"] and second["run_name"] == "04_sft-2"
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(run.root / "tracking" / "gen_2" / "04_sft-2")
    monkeypatch.setattr(importlib.util, "find_spec", found("trackio"))
    training.track("trackio", run, 0, "05_dpo_rl")
    args = training.base_args("/tmp/x", 0, batch_size=1, lr=1e-4)
    assert args["report_to"] == ["trackio"] and args["project"] == "characterflywheel-run"
    training.track(None)


def test_progress_bars_show_unless_in_a_batch_run(monkeypatch):
    monkeypatch.delenv("KIT_BATCH", raising=False)
    assert training.base_args("/tmp/x", 0, batch_size=1, lr=1e-4)["disable_tqdm"] is False
    monkeypatch.setenv("KIT_BATCH", "1")
    assert training.base_args("/tmp/x", 0, batch_size=1, lr=1e-4)["disable_tqdm"] is True
