import subprocess
import sys


def test_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "kit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "flywheel" in out and "samples" in out


def test_bad_profile_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "kit", "flywheel", "--run-dir", str(tmp_path), "--profile", "huge"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "parameter 'profile'" in res.stderr


def test_clean_notebooks_clears_outputs(tmp_path):
    import json

    nb = {"cells": [{"cell_type": "code", "source": "1+1", "metadata": {}, "execution_count": 3,
                     "outputs": [{"output_type": "execute_result", "data": {"text/plain": "2"}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    out = subprocess.run([sys.executable, "-m", "kit", "clean-notebooks", str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("cleaned")
    cell = json.loads(path.read_text())["cells"][0]
    assert cell["outputs"] == [] and cell["execution_count"] is None
