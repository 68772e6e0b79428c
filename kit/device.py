"""What this machine has: the one question about the hardware that both the profiles (kit.config: `auto` means gpu
on a CUDA machine) and the backend switch (kit.models) ask. It sits below both, so neither imports the other for it."""
from __future__ import annotations


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
