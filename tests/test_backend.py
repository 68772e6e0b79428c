"""The backend switch (kit.models.choose_backend) and what every loader and trainer takes from it, checked on the
CPU: a GPU's compute capability is patched in, and Unsloth is played by small fake packages."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from kit import models, training
from kit.errors import KitError

ROOT = Path(__file__).resolve().parents[1]
UNSLOTH_ENV = ("KIT_BACKEND", "UNSLOTH_COMPILE_LOCATION")


def _clear_caches():
    for name in ("choose_backend", "unsloth_import_error", "_say_once"):
        getattr(models, name).cache_clear()


@pytest.fixture
def gpu(monkeypatch):
    """`gpu((major, minor))` makes this process look like a CUDA machine with that compute capability, where torch
    also says bfloat16 works (it does on a T4, emulated). Caches, environment and a fake unsloth are undone after."""
    import torch

    saved = {k: os.environ.get(k) for k in UNSLOTH_ENV}

    def make(capability):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.delenv("KIT_BACKEND", raising=False)
        _clear_caches()

    yield make
    _clear_caches()
    sys.modules.pop("unsloth", None)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def fake_unsloth(tmp_path, monkeypatch, body: str = "") -> Path:
    """An installed `unsloth` package whose import runs `body`."""
    pkg = tmp_path / "fake" / "unsloth"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(pkg.parent))
    return pkg.parent


@pytest.mark.parametrize("capability, dtype", [((7, 0), "float16"), ((7, 5), "float16"), ((8, 0), "bfloat16"),
                                               ((8, 9), "bfloat16"), ((9, 0), "bfloat16")])
def test_compute_dtype_follows_the_compute_capability_everywhere(gpu, monkeypatch, capability, dtype):
    """Defect 1: on a T4 (7.5) torch calls bfloat16 supported; Unsloth loads float16 there and refuses bf16=True."""
    import torch

    gpu(capability)
    monkeypatch.setenv("KIT_BACKEND", "transformers-nf4")
    backend = models.choose_backend(quiet=True)
    assert (backend.name, backend.device, backend.dtype) == ("transformers-nf4", "cuda", dtype)
    args = training.base_args("/tmp/x", 0, batch_size=2, lr=1e-4)
    assert (args["bf16"], args["fp16"], args["use_cpu"]) == (dtype == "bfloat16", dtype == "float16", False)
    kwargs = models._load_kwargs(backend)
    assert kwargs["dtype"] == getattr(torch, dtype)
    assert kwargs["quantization_config"].bnb_4bit_compute_dtype == getattr(torch, dtype)


def test_cpu_backend_is_float32_without_mixed_precision():
    _clear_caches()
    backend = models.choose_backend(quiet=True)
    assert (backend.name, backend.dtype) == ("transformers-cpu", "float32")
    args = training.base_args("/tmp/x", 0, batch_size=2, lr=1e-4)
    assert args["use_cpu"] and not args["bf16"] and not args["fp16"]


@pytest.mark.parametrize("backend_name, capability", [("transformers-cpu", None), ("transformers-nf4", (7, 5)),
                                                      ("unsloth", (8, 0))])
def test_every_backend_sets_the_same_optimiser(gpu, tmp_path, monkeypatch, backend_name, capability):
    """Defect 7: Unsloth's configs default to adamw_8bit and weight decay 0.001; nothing may be left to them."""
    if capability:
        gpu(capability)
        fake_unsloth(tmp_path, monkeypatch)
    monkeypatch.setenv("KIT_BACKEND", backend_name)
    _clear_caches()
    assert models.choose_backend(quiet=True).name == backend_name
    args = training.base_args("/tmp/x", 0, batch_size=2, lr=1e-4)
    assert args["optim"] == "adamw_torch_fused" and args["weight_decay"] == 0.0
    assert args["gradient_checkpointing"] == (capability is not None)


def test_unsloth_that_does_not_import_falls_back_to_nf4_and_check_env_says_so(gpu, tmp_path, monkeypatch, capsys):
    """Defect 5: installed is not importable; the switch falls back with one line, and check-env reports it."""
    from kit.envcheck import check_env

    gpu((7, 5))
    fake_unsloth(tmp_path, monkeypatch, 'raise ImportError("libcudart.so.13: cannot open shared object file")\n')
    backend = models.choose_backend(quiet=True)
    assert backend.name == "transformers-nf4" and backend.dtype == "float16"
    models.choose_backend(quiet=False)
    out = capsys.readouterr().out.splitlines()
    said = [line for line in out if "does not import" in line]
    assert len(said) == 1 and "libcudart" in said[0] and "transformers-nf4" in said[0]
    with pytest.raises(KitError, match="does not import"):
        models.choose_backend("unsloth", quiet=True)
    check_env()
    assert any(line.startswith("WARN  unsloth does not import") for line in capsys.readouterr().out.splitlines())


def test_unsloth_backend_keeps_its_compiled_cache_out_of_the_notebooks(gpu, tmp_path, monkeypatch):
    """Defect 9: Unsloth writes unsloth_compiled_cache/ into the working directory, notebooks/ under papermill."""
    from kit.paths import cache_dir

    gpu((8, 0))
    monkeypatch.delenv("UNSLOTH_COMPILE_LOCATION", raising=False)
    fake_unsloth(tmp_path, monkeypatch, 'import os\nLOCATION = os.environ.get("UNSLOTH_COMPILE_LOCATION")\n')
    assert models.choose_backend(quiet=True).name == "unsloth"
    location = Path(sys.modules["unsloth"].LOCATION)   # what Unsloth saw when it was imported
    assert location.is_absolute() and cache_dir() in location.parents
    assert "unsloth_compiled_cache/" in (ROOT / ".gitignore").read_text().splitlines()


def test_cpu_suite_is_pinned_to_the_cpu_backend_on_a_gpu_machine(gpu, tmp_path, monkeypatch):
    """Defect 8: under scripts/test.sh on a CUDA machine the CPU suite chose a GPU backend and its CPU assertions
    failed. tests/conftest.py pins it; here the pin holds on a machine that looks like an A100 with Unsloth."""
    pinned = os.environ.get("KIT_BACKEND")
    assert pinned == "transformers-cpu"
    gpu((8, 0))
    fake_unsloth(tmp_path, monkeypatch)
    monkeypatch.setenv("KIT_BACKEND", pinned)
    assert models.choose_backend(quiet=True).name == "transformers-cpu"


def test_adapters_load_through_unsloths_own_patching(monkeypatch, tmp_path):
    """Defect 4: plain PeftModel.from_pretrained left out Unsloth's fused LoRA kernels and gradient checkpointing."""
    import peft
    import torch
    from transformers import AutoTokenizer

    calls = []

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kw):
            calls.append(("from_pretrained", kw))
            model = SimpleNamespace(generation_config=SimpleNamespace(pad_token_id=0),
                                    config=SimpleNamespace(num_hidden_layers=30))
            return model, AutoTokenizer.from_pretrained(kw["model_name"])

        @staticmethod
        def patch_peft_model(model, use_gradient_checkpointing="unsloth"):
            calls.append(("patch_peft_model", use_gradient_checkpointing))
            return model

        @staticmethod
        def for_inference(model):
            calls.append(("for_inference", None))

    monkeypatch.setitem(sys.modules, "unsloth", SimpleNamespace(FastLanguageModel=FastLanguageModel))
    monkeypatch.setattr(peft.PeftModel, "from_pretrained",
                        lambda model, path, **kw: calls.append(("peft", path, kw)) or model)
    backend = models.Backend("unsloth", "cuda", "float16", True)
    for trainable in (False, True):
        calls.clear()
        models.load_policy(adapter=tmp_path, trainable=trainable, backend=backend, max_seq_length=900)
        names = [c[0] for c in calls]
        assert names == ["from_pretrained", "peft", "patch_peft_model"] + ([] if trainable else ["for_inference"])
        loaded = calls[0][1]
        assert loaded["dtype"] == torch.float16 and loaded["load_in_4bit"] and loaded["max_seq_length"] == 900
        assert calls[1][1] == str(tmp_path) and calls[1][2]["is_trainable"] is True   # as Unsloth loads adapters
        assert calls[2][1] == "unsloth"


DRIVER = """
import json, sys, types

import torch

torch.cuda.is_available = lambda: True
torch.cuda.get_device_capability = lambda device=None: (7, 5)   # a T4

import kit.models as models
from kit import dpo, rewards, rl, sft
from kit.config import PolicyConfig, RewardModelConfig, stage_config


class Card:
    def prompt(self, history, user_name=None):
        return [{"role": "system", "content": "You are Aria."}] + history

    def brief(self, user_name=None):
        return "Aria"


def fake_load(*args, **kwargs):
    return types.SimpleNamespace(), models.load_tokenizer()


models.load_policy = models.load_classifier = fake_load
cards = {"aria": Card()}
history = [{"role": "user", "content": "hi"}]
pair = {"prompt": history, "chosen": [{"role": "assistant", "content": "Hello!"}],
        "rejected": [{"role": "assistant", "content": "No."}], "character_id": "aria"}
record = {"prompt": history, "completion": [{"role": "assistant", "content": "Hello!"}], "character_id": "aria"}
item = {"character_id": "aria", "user_name": None, "history": history}
# the causal-LM reward model is the path that binds TRL's RewardTrainer (the embedding model binds no trainer)
policy, reward = stage_config(PolicyConfig, "tiny"), stage_config(RewardModelConfig, "tiny", rm_backbone="policy")
NAME = "smollm2-135m-instruct"
calls = {"sft": lambda: sft.train_sft(NAME, [record], cards, "/nonexistent/sft", policy, 0),
         "dpo": lambda: dpo.train_dpo(NAME, "/nonexistent/start", [pair], cards, "/nonexistent/dpo", policy, 0),
         "grpo": lambda: rl.train_grpo(NAME, "/nonexistent/start", [item], cards, lambda i, r: [0.0] * len(r),
                                       "/nonexistent/rl", policy, 0),
         "reward": lambda: rewards.train_pointwise(NAME, [pair], cards, "/nonexistent/rm", reward, 0)}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = "returned"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
unsloth = sys.modules.get("unsloth")
out["imported_before_unsloth"] = getattr(unsloth, "BEFORE", "unsloth never imported")
out["configs"] = getattr(unsloth, "CONFIGS", [])
print("RESULT " + json.dumps(out))
"""

FAKE_UNSLOTH = """
import sys

BEFORE = [m for m in ("trl", "transformers", "peft") if m in sys.modules]   # what Unsloth itself checks
CONFIGS = []

import trl


class _Config:
    def __init__(self, **kwargs):
        CONFIGS.append({k: kwargs.get(k) for k in ("fp16", "bf16", "optim", "weight_decay", "use_cpu")})
        self.__dict__.update(kwargs)


class _Trainer:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("patched " + type(self).__name__)


# Unsloth rebinds TRL's module attributes like this when it is imported (unsloth/models/rl.py)
for name in ("SFT", "DPO", "GRPO", "Reward"):
    setattr(trl, name + "Config", type("Unsloth" + name + "Config", (_Config,), {}))
    setattr(trl, name + "Trainer", type("Unsloth" + name + "Trainer", (_Trainer,), {}))
"""


def test_unsloth_is_imported_first_and_every_trainer_class_is_bound_after_it(tmp_path):
    """Defect 3: kit/dpo.py bound trl.DPOTrainer before Unsloth was imported, so Unsloth's patch missed it; and
    transformers and PEFT came first in every process. A fresh process, a T4 and a fake Unsloth that patches TRL
    the way the real one does: every trainer the kit builds must be the patched class, with float16 settings."""
    fake = tmp_path / "fake" / "unsloth"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_UNSLOTH)
    env = {k: v for k, v in os.environ.items() if k not in UNSLOTH_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(fake.parent), str(ROOT)])
    proc = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["imported_before_unsloth"] == []
    for name, cls in (("sft", "SFT"), ("dpo", "DPO"), ("grpo", "GRPO"), ("reward", "Reward")):
        assert out[name] == f"RuntimeError: patched Unsloth{cls}Trainer", (name, out[name])
    assert len(out["configs"]) == 4
    for config in out["configs"]:
        assert config == {"fp16": True, "bf16": False, "optim": "adamw_torch_fused", "weight_decay": 0.0,
                          "use_cpu": False}
