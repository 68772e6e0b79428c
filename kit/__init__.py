"""CharacterFlywheel notebook kit: the package the notebooks call.

Importing `kit` is cheap: torch, transformers and friends load only when a function that needs them runs.
"""
import logging

__version__ = "0.1.0"

# bitsandbytes, imported by transformers and PEFT, looks on CPUs with AVX512-BF16 for an optional 4-bit kernel in
# the Hugging Face `kernels` package (not installed: the kit downloads nothing at run time) and logs "Failed to load
# CPU gemm_4bit_forward from kernels-community" at every import. It then uses its own CPU code, which the kit's NF4
# tests run; the warning asks for nothing the kit needs, so that one logger is kept to errors.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
