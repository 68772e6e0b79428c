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
