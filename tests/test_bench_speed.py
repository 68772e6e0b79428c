"""bench/speed.py's harness on the CPU: the random checkpoints it writes, and the precision it asks of each path."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("bench_speed", ROOT / "bench" / "speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_random_checkpoint_is_written_tensor_by_tensor_in_the_compute_dtype(speed, tmp_path, monkeypatch):
    """Defect 10: the 8B shape was built whole in float32 on the GPU (32 GB) before being cast. The writer now
    never holds more than one shard: with a small shard limit the smoke model comes out in several files."""
    import torch
    import transformers.models.llama.modeling_llama as llama
    from transformers import AutoModelForCausalLM

    import kit.models  # noqa: F401  (bound to the real cache first: the embedded model is converted there)
    import kit.paths

    monkeypatch.setattr(kit.paths, "cache_dir", lambda: tmp_path)   # the bench's models only, not the embedded one
    built_on = []

    class Recording(llama.LlamaForCausalLM):
        def __init__(self, config):
            built_on.append(str(torch.get_default_device()))
            super().__init__(config)

    monkeypatch.setattr(llama, "LlamaForCausalLM", Recording)   # what `from transformers import` resolves to
    path = speed.model_dir("smoke", "float16", max_shard_bytes=2 ** 20)
    assert built_on and set(built_on) == {"meta"}, "the model is never built with real weights"
    assert path.name == "llama-smoke-float16"
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "one shard at a time"
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.dtype == torch.float16 and model.config.num_hidden_layers == 2
    norms = [p for n, p in model.named_parameters() if n.endswith("norm.weight")]
    assert norms and all(torch.all(p == 1) for p in norms)


@pytest.mark.parametrize("capability, bf16, fp16", [((7, 5), False, True), ((8, 0), True, False)])
def test_every_path_asks_the_precision_of_the_card(speed, monkeypatch, capability, bf16, fp16):
    """Defect 1 in the bench: plain and raw-Unsloth paths asked bf16 on every GPU, which Unsloth refuses on a T4."""
    import torch

    from kit import models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setenv("KIT_BACKEND", "transformers-nf4")
    models.choose_backend.cache_clear()
    try:
        dtype = models.choose_backend(quiet=True).dtype
        for path in ("kit", "plain", "unsloth"):
            args = speed.trainer_args(path, 2, 3, "/tmp/x", dtype)
            assert (args["bf16"], args["fp16"]) == (bf16, fp16), path
    finally:
        models.choose_backend.cache_clear()
