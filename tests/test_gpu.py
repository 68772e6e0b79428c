"""The GPU backends on a CUDA GPU: `pytest -m gpu` (scripts/gpu_check.sh runs it once per backend, the second time
with KIT_BACKEND=transformers-nf4). Every test here skips on a machine without CUDA, and in the CPU suite, which
pins the CPU backend (tests/conftest.py); on a GPU it runs the same kit calls the notebooks make."""
import os

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


needs_gpu = pytest.mark.skipif(not _cuda() or os.environ.get("KIT_BACKEND") == "transformers-cpu",
                               reason="needs a CUDA GPU; run with -m gpu (the CPU suite pins the CPU backend)")

RECORDS = [{"prompt": [{"role": "user", "content": f"hi there {i}"}],
            "completion": [{"role": "assistant", "content": "Hello, friend! Stay sparkly ✨"}], "character_id": "aria"}
           for i in range(8)]
ITEMS = [{"character_id": "aria", "user_name": "Ann", "history": [{"role": "user", "content": "hey, what's up?"}]},
         {"character_id": "aria", "user_name": None, "history": [{"role": "user", "content": "tell me a joke"}]}]


@needs_gpu
def test_backend_switch_picks_a_gpu_backend_with_the_dtype_of_the_card():
    import torch

    from kit.models import choose_backend

    backend = choose_backend(quiet=True)
    assert backend.name in ("unsloth", "transformers-nf4") and backend.device == "cuda" and backend.load_in_4bit
    if os.environ.get("KIT_BACKEND") in (None, "", "unsloth"):
        assert backend.name == "unsloth", "Unsloth is installed with requirements-gpu.txt; check-env says why not"
    major = torch.cuda.get_device_capability()[0]
    assert backend.dtype == ("bfloat16" if major >= 8 else "float16")


@pytest.fixture(scope="module")
def sft_adapter(world, tmp_path_factory):
    from kit import sft
    from kit.config import PolicyConfig, stage_config

    out = tmp_path_factory.mktemp("gpu") / "sft"
    log = sft.train_sft("smollm2-135m-instruct", RECORDS, world.cards, out, stage_config(PolicyConfig, "tiny"), 0)
    return out, log


@needs_gpu
def test_sft_trains_on_the_gpu_backend_and_saves_a_peft_adapter(sft_adapter):
    from kit import sft
    from kit.models import choose_backend

    out, log = sft_adapter
    assert log["backend"] == choose_backend(quiet=True).name and log["examples"] == len(RECORDS) and log["loss"]
    assert log["tokens_per_second"] and log["tokens_per_second"] > 0
    assert sft.load_adapter_check(out).startswith("PeftModel")


@needs_gpu
def test_grpo_keeps_the_loss_type_and_kl_it_is_given(world, sft_adapter, tmp_path):
    """Unsloth switches TRL's GRPO defaults to loss_type='dapo', beta=0; the kit always sets both. The log reports
    trainer.args, what the trainer ran with, so a patch that replaced them fails here."""
    from kit import rl
    from kit.config import PolicyConfig, stage_config

    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm="grpo", rl_steps=1, max_new_tokens=12)
    log = rl.train("smollm2-135m-instruct", sft_adapter[0], ITEMS, world.cards,
                   lambda items, replies: [-float(len(r)) for r in replies], tmp_path / "rl", cfg, 0)
    assert log["loss_type"] == cfg.rl_loss_type == "grpo"
    assert log["beta"] == cfg.rl_beta > 0
    assert (tmp_path / "rl" / "adapter_model.safetensors").exists()


@needs_gpu
def test_policy_generates_on_the_gpu(world, sft_adapter):
    from kit.config import GenerationConfig, stage_config
    from kit.sampling import Policy

    policy = Policy.load("smollm2-135m-instruct", sft_adapter[0], gen=stage_config(GenerationConfig, "tiny"))
    assert next(policy.model.parameters()).is_cuda
    card = world.cards["aria"]
    replies = policy.reply([card.prompt(it["history"], it["user_name"]) for it in ITEMS], progress=False)
    assert len(replies) == len(ITEMS) and all(isinstance(r, str) for r in replies)
