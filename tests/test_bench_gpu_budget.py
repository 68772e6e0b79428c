"""bench/gpu_budget.py: the estimate behind the gpu profile's size holds the profile to its hour."""
import argparse
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _budget():
    spec = importlib.util.spec_from_file_location("gpu_budget", ROOT / "bench" / "gpu_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_profile_fits_three_generations_in_about_an_hour_on_a_t4():
    budget = _budget()
    t4 = argparse.Namespace(t4_decode_step=0.025, t4_train=8000.0, t4_score=24000.0, t4_notebook=45.0)
    gpu = budget.generation_seconds("gpu", budget.rates("t4", t4))
    assert 3 * sum(gpu.values()) / 60 < 60, "a larger gpu profile needs a new estimate and README figures"
    cpu = budget.generation_seconds("cpu", budget.rates("cpu", t4))
    measured = sum(budget.MEASURED_CPU7.values())
    assert abs(sum(cpu.values()) - measured) / measured < 0.2, "counts off runs/cpu7 (or the cpu profile changed)"
