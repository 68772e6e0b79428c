"""The embedded model and embedder load offline; the backend switch is one function."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit import models
from kit.device import cuda_available

pytestmark = pytest.mark.slow


def test_embedded_model_converted_once_without_quantizer_flag():
    path = Path(models.resolve_model())
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    assert list(path.glob("*.safetensors"))
    assert models.resolve_model() == str(path)          # reused, not converted again
    assert models.resolve_model("someone/some-model") == "someone/some-model"


def test_tokenizer_specials_and_template():
    tok = models.load_tokenizer()
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>" and tok.pad_token != tok.eos_token
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True,
                                  return_dict=True)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3   # system, user, assistant: no doubled BOS


def test_generates_offline(base_policy):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    reply = base_policy.reply([[{"role": "user", "content": "Say hello."}]], progress=False)
    assert isinstance(reply[0], str) and reply[0].strip()


def test_generation_says_which_replies_the_token_limit_cut(base_policy):
    """`cut` marks, in input order, a reply the limit stopped before an end token: 3 tokens cut every reply, 40 cut a
    long story but not a sum the model answers in one sentence."""
    from kit.sampling import generate_replies

    convs = [[{"role": "user", "content": "Tell me a long story about a dragon, with every detail."}],
             [{"role": "user", "content": "What is 2+2?"}]]
    short, long_ = [], []
    generate_replies(base_policy.model, base_policy.tokenizer, convs, max_new_tokens=3, temperature=0, cut=short,
                     progress=False)
    replies = generate_replies(base_policy.model, base_policy.tokenizer, convs, max_new_tokens=40, temperature=0,
                               cut=long_, progress=False)
    assert short == [True, True] and long_ == [True, False] and "4" in replies[1]
    one_by_one, none = [], [True]
    generate_replies(base_policy.model, base_policy.tokenizer, convs, max_new_tokens=40, temperature=0,
                     cut=one_by_one, batch_size=1, progress=False)
    assert one_by_one == [True, False]                     # flags in input order across batches too
    assert generate_replies(base_policy.model, base_policy.tokenizer, [], cut=none) == [] and none == []


def test_backend_is_cpu_here_and_says_so(capsys):
    backend = models.choose_backend.__wrapped__()
    assert backend.name == ("transformers-cpu" if not cuda_available() else backend.name)
    assert "backend:" in capsys.readouterr().out


def test_embedder_embeds():
    emb = models.load_embedder().encode(["a pirate ship", "a boat at sea", "tax law"], normalize_embeddings=True)
    assert emb.shape == (3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


def test_import_kit_is_light():
    code = "import sys, kit, kit.cli, kit.config, kit.paths, kit.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_lora_top_layers_names_the_last_layers():
    from kit.models import LoraSettings

    assert LoraSettings().layers(30) is None
    assert LoraSettings(top_layers=4).layers(30) == [26, 27, 28, 29]
    assert LoraSettings(top_layers=30).layers(30) is None


def _trainable_weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def test_fresh_trainable_weights_follow_the_seed():
    """A new LoRA adapter and a new score head are drawn from the run seed, not from whatever state torch's global
    generator is in: the same seed trains the same model in any process."""
    import torch

    from kit.models import LoraSettings, load_classifier, load_policy

    lora = LoraSettings(r=4, alpha=8, top_layers=2)
    for load in (load_classifier, load_policy):
        first = _trainable_weights(load(trainable=True, lora=lora, seed=3)[0])
        torch.manual_seed(12345)
        torch.rand(1000)  # what an earlier cell or stage might have drawn
        again = _trainable_weights(load(trainable=True, lora=lora, seed=3)[0])
        other = _trainable_weights(load(trainable=True, lora=lora, seed=4)[0])
        assert first and first.keys() == again.keys()
        assert all(torch.equal(first[k], again[k]) for k in first), load.__name__
        assert any(not torch.equal(first[k], other[k]) for k in first), load.__name__


def test_transformers_nf4_path_trains_and_reloads_on_the_cpu(world, monkeypatch, tmp_path):
    """The transformers-nf4 backend's own code (NF4 loading, k-bit preparation, LoRA on 4-bit layers, TRL's SFT and
    GRPO trainers on a quantized model, the adapter saved and reloaded unmerged, a 4-bit classifier), run where
    bitsandbytes 0.50 allows it: on the CPU, in float32. Only the device differs from a GPU run."""
    import bitsandbytes as bnb

    from kit import rl, sft
    from kit.config import PolicyConfig, stage_config
    from kit.sampling import Policy

    nf4 = models.Backend("transformers-nf4", "cpu", "float32", True)
    monkeypatch.setattr(models, "choose_backend", lambda *args, **kwargs: nf4)
    cfg = stage_config(PolicyConfig, "tiny", sft_lora_layers=2, rl_algorithm="grpo", rl_steps=1, max_new_tokens=8)
    records = [{"prompt": [{"role": "user", "content": f"hi {i}"}],
                "completion": [{"role": "assistant", "content": "Hello, friend!"}], "character_id": "aria"}
               for i in range(4)]
    log = sft.train_sft(models.DEFAULT_MODEL, records, world.cards, tmp_path / "sft", cfg, 0)
    assert log["backend"] == "transformers-nf4" and log["loss"]
    items = [{"character_id": "aria", "user_name": "Ann", "history": [{"role": "user", "content": "hey!"}]}]
    rl_log = rl.train(models.DEFAULT_MODEL, tmp_path / "sft", items, world.cards,
                      lambda its, replies: [-float(len(r)) for r in replies], tmp_path / "rl", cfg, 0)
    assert rl_log["loss_type"] == "grpo" and rl_log["beta"] == cfg.rl_beta
    policy = Policy.load(models.DEFAULT_MODEL, tmp_path / "rl")
    layers = [m for m in policy.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers and hasattr(policy.model, "peft_config"), "4-bit weights, the adapter left unmerged"
    assert isinstance(policy.reply([[{"role": "user", "content": "hello"}]], progress=False)[0], str)
    classifier, _ = models.load_classifier(trainable=True, lora=models.LoraSettings(r=4, alpha=8, top_layers=2))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in classifier.modules())
    assert any("score" in n for n, p in classifier.named_parameters() if p.requires_grad)
