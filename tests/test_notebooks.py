"""Every notebook under notebooks/ runs top to bottom under papermill with the tiny profile: the stage notebooks
inside a 2-generation tiny flywheel (tests/test_flywheel.py), the others on their own."""
import json
from pathlib import Path

import pytest

from kit.notebooks import FINAL_NOTEBOOKS, SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, execute, notebooks_dir, parameters_of
from kit.paths import Run

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))
REQUIRED = {"run_dir", "generation", "profile", "seed", "model_name"}
IN_FLYWHEEL = set(SETUP_NOTEBOOKS) | set(STAGE_NOTEBOOKS) | set(FINAL_NOTEBOOKS)


def test_there_are_notebooks():
    assert "00_quickstart" in NOTEBOOKS and IN_FLYWHEEL <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_clean_with_parameters(name):
    nb = json.loads((notebooks_dir() / f"{name}.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters'"
    assert not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), "commit without outputs"
    assert REQUIRED <= set(parameters_of(notebooks_dir() / f"{name}.ipynb"))
    assert nb["cells"][0]["cell_type"] == "markdown", "the top says which step, what it reads and writes"


def test_every_notebook_but_the_trajectory_takes_a_cast():
    """A user's own cards replace the 14 samples in every notebook that builds the world (08 only reads the run)."""
    for name in NOTEBOOKS:
        if name != "08_flywheel":
            assert "cards_dir" in parameters_of(notebooks_dir() / f"{name}.ipynb"), name


def _errors(path: Path) -> list:
    executed = json.loads(Path(path).read_text())
    return [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(NOTEBOOKS) - IN_FLYWHEEL))
def test_standalone_notebook_runs_with_tiny_profile(name, tmp_path):
    run = Run(tmp_path / "tiny")
    out = execute(name, run, 0, dict(run_dir=str(run.root), generation=0, profile="tiny", seed=0), progress=False)
    assert not _errors(out)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IN_FLYWHEEL))
def test_flywheel_notebook_ran_with_tiny_profile(name, tiny_flywheel):
    """Each stage notebook's executed copies (every generation) hold no error."""
    copies = sorted(tiny_flywheel.root.glob(f"gen_*/notebooks/{name}*.ipynb"))
    assert copies, f"{name} never ran in the flywheel"
    for path in copies:
        assert not _errors(path), path


def test_a_failed_notebook_is_kept_and_named_in_one_line(failing_notebook, tmp_path):
    from kit.errors import KitError

    run = Run(tmp_path / "run")
    params = dict(run_dir=str(run.root), generation=0, profile="tiny", seed=0, model_name="m")
    with pytest.raises(KitError) as err:
        execute(failing_notebook, run, 0, params, progress=False)
    message = str(err.value)
    kept = run.root / "gen_0" / "notebooks" / "fails.failed.ipynb"
    assert "\n" not in message
    assert message.startswith("notebook fails (generation 0) failed at cell In [4] (raise ValueError(")
    assert "ValueError: the second cell broke;" in message and str(kept) in message
    assert _errors(kept) and not (run.root / "gen_0" / "notebooks" / "fails.ipynb").exists()
    assert not [p for p in kept.parent.iterdir() if p.name.startswith(".")], "no temporary left"
    # fixed, the rerun writes the notebook and drops the stale failure
    import kit.notebooks

    path = kit.notebooks.notebooks_dir() / "fails.ipynb"
    path.write_text(path.read_text().replace("raise ValueError", "print"))
    execute(failing_notebook, run, 0, params, progress=False)
    assert sorted(p.name for p in kept.parent.iterdir()) == ["fails.ipynb"]


def test_a_notebook_runs_in_the_run_directory_without_the_kernels_tcp_warning(tmp_path, monkeypatch, capfd):
    """The kernel's "running over TCP without encryption" went to the console at every notebook; warnings from
    the notebook's own code stay in its outputs."""
    import kit.notebooks

    cells = [{"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]}, "outputs": [],
              "source": "run_dir = 'x'\ngeneration = 0"},
             {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": "import os, warnings\nprint(os.getcwd())\nwarnings.warn('from the notebook')"}]
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "hello.ipynb").write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {
        "display_name": "Python 3", "language": "python", "name": "python3"}}, "nbformat": 4, "nbformat_minor": 4}))
    monkeypatch.setattr(kit.notebooks, "notebooks_dir", lambda: folder)
    run = Run(tmp_path / "run")
    out = execute("hello", run, 0, dict(run_dir=str(run.root), generation=0), status="[gen 0/1] hello")
    console = capfd.readouterr()
    assert "without encryption" not in console.err + console.out
    assert console.out == "[gen 0/1] hello: running ...\n"
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    assert outputs[0]["text"] == [str(run.root) + "\n"] or "".join(outputs[0]["text"]) == str(run.root) + "\n"
    assert any("from the notebook" in "".join(o.get("text", "")) for o in outputs)


def test_bitsandbytes_cpu_kernel_lookup_is_kept_quiet():
    import logging

    import kit  # noqa: F401

    assert logging.getLogger("bitsandbytes.backends.cpu.ops").level == logging.ERROR

