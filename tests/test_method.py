"""The method's table is what the kit says about its steps: the flywheel's order, the notebooks' openings, the
step modules' docstrings, the artifacts the notebooks name and the README's map all agree with it."""
import ast
import importlib
import json
import re

import pytest

import kit
from kit import method
from kit.config import stage_config
from kit.errors import KitError
from kit.notebooks import FINAL_NOTEBOOKS, SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, notebooks_dir
from kit.paths import ARTIFACTS, RUN_FILES, artifact_path, repo_root

NOTEBOOKS = sorted(p.stem for p in notebooks_dir().glob("*.ipynb"))
KIT = repo_root() / "kit"


def _cells(name: str, kind: str) -> list[str]:
    nb = json.loads((notebooks_dir() / f"{name}.ipynb").read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def _modules() -> dict[str, str]:
    """kit module name (as the table writes it: "rejection", "world.traffic") -> its docstring."""
    out = {}
    for path in sorted(KIT.rglob("*.py")):
        parts = path.relative_to(KIT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return out


def test_steps_are_numbered_as_the_paper_numbers_them():
    assert [s.number for s in method.method_steps()] == ["1", "2", "3", "4a", "4b", "4c", "5", "6", "7"]
    assert method.step("4b").modules == ("dpo",)
    with pytest.raises(KitError, match="no step '8'"):
        method.step("8")


def test_every_notebook_is_in_the_table_and_the_flywheel_runs_them_in_its_order():
    named = [nb for s in method.STEPS for nb in s.notebooks]
    assert set(named) == set(NOTEBOOKS)
    assert (SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, FINAL_NOTEBOOKS) == \
        (method.notebooks("before"), method.notebooks("generation"), method.notebooks("after"))
    order = SETUP_NOTEBOOKS + STAGE_NOTEBOOKS + FINAL_NOTEBOOKS
    assert [int(nb[:2]) for nb in order] == sorted(int(nb[:2]) for nb in order), "file numbers follow the method"
    first = [min(int(nb[:2]) for nb in s.notebooks) for s in method.method_steps()]
    assert first[:6] == sorted(first[:6]), "steps 1-4c come in notebook order"
    assert method.notebooks("alone") == ("00_quickstart",)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_notebook_opening_says_its_steps_as_the_table_does(name):
    opening = _cells(name, "markdown")[0]
    steps = method.steps_of(name)
    assert method.claimed_steps(opening) == {s.number for s in steps}
    if steps:
        assert method.heading(name) in opening.splitlines()


def test_a_module_docstring_says_its_steps_as_the_table_does():
    modules = _modules()
    for s in method.STEPS:
        for m in s.modules:
            assert m in modules, f"step {s.number or s.name} names kit.{m}, which does not exist"
    for name, doc in modules.items():
        assert method.claimed_steps(doc) == {s.number for s in method.steps_in(name)}, name


def _named_in(name: str) -> list[str]:
    """Artifact names a notebook's code gives Run.artifact or load_generations, f-strings as patterns."""
    found = []
    for code in _cells(name, "code"):
        found += re.findall(r'(?:\.artifact\(|\.write_json\(|load_generations\()[^"]*?f?"([a-z_.{}]+)"', code)
    return found


@pytest.mark.parametrize("name", [nb for nb in NOTEBOOKS if nb != "08_flywheel"])
def test_a_notebook_names_only_artifacts_its_steps_read_or_write(name):
    rows = [s for s in method.STEPS if name in s.notebooks]
    listed = {a for s in rows for a in s.reads + s.writes}
    named = _named_in(name)
    assert named, "the notebook names what it reads and writes"
    for pattern in named:
        regex = re.compile(re.sub(r"\\{[^}]*\\}", "[a-z_]+", re.escape(pattern)) + "$")
        assert any(regex.match(a) for a in listed), (name, pattern)


def test_no_notebook_spells_out_a_run_folder():
    for name in NOTEBOOKS:
        for code in _cells(name, "code"):
            assert "run.stage(" not in code and "_dir / \"" not in code, name


def test_artifacts_are_named_in_the_table_and_written_in_their_steps_folders():
    written = {a for s in method.STEPS for a in s.writes}
    read = {a for s in method.STEPS for a in s.reads}
    assert (written | read) - set(RUN_FILES) <= set(ARTIFACTS)
    assert set(ARTIFACTS) <= written, "every artifact is written by some step"
    assert read <= written, "nothing is read that no step writes"
    for s in method.STEPS:
        for a in s.writes:
            if a not in RUN_FILES:
                assert any(artifact_path(a).startswith(f + "/") for f in s.folders), (s.name, a)


@pytest.mark.parametrize("row", method.STEPS, ids=lambda s: s.number or s.notebooks[0])
def test_a_steps_config_is_a_stage_config_its_notebooks_build(row):
    if row.config is None:
        return
    assert stage_config(row.config, "tiny").profile == "tiny"
    code = "\n".join(c for name in row.notebooks for c in _cells(name, "code"))
    assert f"stage_config({row.config.__name__}" in code, (row.notebooks, row.config.__name__)


def test_the_readme_carries_the_rendered_map():
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    assert method.render_map() in readme
    assert method.with_map(readme) == readme, "run `python -m kit method-map --write README.md`"


def test_the_map_reads_step_notebook_module_artifacts():
    text = method.render_map()
    row = next(line for line in text.splitlines() if line.startswith("| **4b**"))
    assert "`05_dpo_rl`" in row and "`kit/dpo.py`" in row and "`PolicyConfig`" in row
    assert "`policy/dpo/{adapter, metrics.json}`" in row and "`policy/rs/{prompts, candidates}`" in row
    assert len(text.splitlines()) == 4 + len(method.STEPS)


def test_the_map_goes_between_its_markers_and_nowhere_else():
    start, end = method.MARKERS
    text = f"# Title\n\n{start}\nold map\n{end}\n\nmore\n"
    new = method.with_map(text)
    assert new.startswith("# Title\n\n" + start + "\n") and new.endswith(f"\n{end}\n\nmore\n")
    assert "old map" not in new and method.render_map() in new
    assert method.with_map(new) == new
    for broken in ("no markers", f"{end}\n{start}", f"{start}\n{start}\n{end}"):
        with pytest.raises(KitError, match="README.md: expected one"):
            method.with_map(broken, "README.md")


def test_each_step_module_imports():
    for s in method.STEPS:
        for m in s.modules:
            importlib.import_module(f"kit.{m}")
    assert kit.__file__
