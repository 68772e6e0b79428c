import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    """The CPU suite asserts CPU behaviour (use_cpu, float32, merged adapters), so it runs on the CPU backend even on
    a CUDA machine; `pytest -m gpu` (tests/test_gpu.py, scripts/gpu_check.sh) leaves the choice to the machine.
    Set here, before any test or fixture chooses a backend, and inherited by the notebooks' kernels."""
    if "gpu" not in (config.getoption("markexpr", "") or "").replace("not gpu", ""):
        os.environ.setdefault("KIT_BACKEND", "transformers-cpu")


@pytest.fixture(scope="session")
def world():
    from kit.world.world import World

    return World.build(seed=0, n_users=120)


@pytest.fixture(scope="session")
def base_policy():
    """The embedded model, loaded once for the whole session, with tiny generation settings."""
    from kit.config import GenerationConfig, stage_config
    from kit.sampling import Policy

    return Policy.load("smollm2-135m-instruct", name="base", gen=stage_config(GenerationConfig, "tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_flywheel(tmp_path_factory):
    """The main job with the tiny profile, 2 generations, run once per test session (tests/test_flywheel.py and
    tests/test_notebooks.py read it)."""
    from kit.flywheel import run_flywheel

    return run_flywheel(str(tmp_path_factory.mktemp("flywheel") / "tiny"), profile="tiny", generations=2, seed=0,
                        progress=False)


@pytest.fixture
def failing_notebook(tmp_path, monkeypatch):
    """notebooks/fails.ipynb, in a notebooks folder of its own: the flywheel's parameters, a cell that works, one
    that raises. Returns its name; `kit.notebooks.notebooks_dir` points to that folder for the test."""
    import json

    import kit.notebooks

    def cell(source, tags=()):
        return {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(tags)}, "outputs": [],
                "source": source}

    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# fails"},
                    cell('run_dir = "x"\ngeneration = 0\nprofile = "tiny"\nseed = 0\nmodel_name = "m"', ["parameters"]),
                    cell("half = 1"),
                    cell("# a comment first\nraise ValueError('the second cell broke\\nand said more')")],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 4}
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "fails.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    monkeypatch.setattr(kit.notebooks, "notebooks_dir", lambda: folder)
    return "fails"
