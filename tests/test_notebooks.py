"""Every notebook under notebooks/ runs top to bottom under papermill with the tiny profile."""
import json
from pathlib import Path

import pytest

from kit.notebooks import execute, notebooks_dir, parameters_of
from kit.paths import Run

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))
REQUIRED = {"run_dir", "generation", "profile", "seed", "model_name"}


def test_there_are_notebooks():
    assert "00_quickstart" in NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_clean_with_parameters(name):
    nb = json.loads((notebooks_dir() / f"{name}.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters'"
    assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "commit without outputs"
    assert REQUIRED <= set(parameters_of(notebooks_dir() / f"{name}.ipynb"))
    assert nb["cells"][0]["cell_type"] == "markdown", "the top says which step, what it reads and writes"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return Run(tmp_path_factory.mktemp("runs") / "tiny")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_with_tiny_profile(name, tiny_run):
    """In name order, into one run directory, as the flywheel would: each stage reads what the one before wrote
    (03 trains on 02's annotation)."""
    out = execute(name, tiny_run, 0, dict(run_dir=str(tiny_run.root), generation=0, profile="tiny", seed=0),
                  progress=False)
    executed = json.loads(Path(out).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
