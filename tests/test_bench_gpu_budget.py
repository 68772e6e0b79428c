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
    gpu = [budget.generation_seconds("gpu", budget.rates("t4", t4), g) for g in range(3)]
    assert sum(sum(g.values()) for g in gpu) / 60 < 60, "a larger gpu profile needs a new estimate and README figures"


def test_the_counts_of_work_meet_the_committed_cpu_runs():
    """The cpu estimate, from the same counts of work, against the cpu runs in bench/results/stages.json: if the
    counts are right for the cpu profile, they are right for the gpu profile."""
    budget = _budget()
    t4 = argparse.Namespace(t4_decode_step=0.025, t4_train=8000.0, t4_score=24000.0, t4_notebook=45.0)
    cpu = [budget.generation_seconds("cpu", budget.rates("cpu", t4), g) for g in range(3)]
    measured = budget.measured_cpu()
    assert measured, "bench/results/stages.json holds no cpu run"
    estimate = sum(sum(g.values()) for g in cpu) / 3
    assert abs(estimate - sum(measured.values())) / sum(measured.values()) < 0.2, \
        "the counts of work are off the measured cpu runs (or the cpu profile changed: rerun bench/stages.py)"
