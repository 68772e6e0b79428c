"""Executing the stage notebooks with papermill, into the run directory."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import KitError
from .paths import Run, atomic_path, repo_root

# Run once, before the first generation: the tour of the world, which also measures where the base model starts.
SETUP_NOTEBOOKS = ("01_world",)
# The method's order, once per generation. A stage notebook not written yet is skipped, and the runner says so.
STAGE_NOTEBOOKS = ("02_curation", "03_reward_models", "04_sft", "05_dpo_rl", "06_offline_eval",
                   "07_ab_test")
# Run once, after the last generation: the trajectory across generations.
FINAL_NOTEBOOKS = ("08_flywheel",)


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def notebook_path(name: str) -> Path:
    return notebooks_dir() / f"{name}.ipynb"


def parameters_of(path: str | Path) -> dict:
    """The names and defaults of a notebook's `parameters` cell (as papermill sees them)."""
    import papermill as pm

    return {k: v["default"] for k, v in pm.inspect_notebook(str(path)).items()}


def execute(name: str, run: Run, generation: int, parameters: dict, *, kernel: str = "python3",
            progress: bool = True, output_name: str | None = None) -> Path:
    """Run notebooks/<name>.ipynb with `parameters` into <run>/gen_<g>/notebooks/<output_name or name>.ipynb
    (atomically). If a cell fails, the executed notebook with its traceback is kept as <output>.failed.ipynb and a
    KitError says, in one line, which notebook, which cell and what error."""
    import papermill as pm

    src = notebook_path(name)
    if not src.exists():
        raise KitError(f"{src}: no such notebook")
    known = parameters_of(src)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise KitError(f"{src}: no parameter(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}")
    out = run.stage(generation, "notebooks", f"{output_name or name}.ipynb")
    failed = out.with_name(f"{out.stem}.failed.ipynb")
    with atomic_path(out) as tmp:
        try:
            pm.execute_notebook(str(src), str(tmp), parameters=parameters, kernel_name=kernel, progress_bar=progress,
                                cwd=str(notebooks_dir()), log_output=False)
        except Exception as exc:   # a cell raised, or the kernel died: what ran is the batch user's one log
            kept = None
            if tmp.exists():
                with atomic_path(failed) as keep:
                    os.replace(tmp, keep)
                kept = failed
            raise KitError(failure_line(name, generation, exc, kept)) from None
    if failed.exists():   # an earlier failure of this notebook, run through now
        failed.unlink()
    return out


def failure_line(name: str, generation: int, exc: Exception, kept: Path | None) -> str:
    """One line: the notebook, the cell (as In [n] of the kept notebook, with its first line) and the error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first = next((line.strip() for line in (exc.source or "").splitlines()
                      if line.strip() and not line.strip().startswith("#")), "")
        cell = f"cell In [{exc.exec_count}] ({first[:60] + ('...' if len(first) > 60 else '')})"
        what = f"{exc.ename}: {(str(exc.evalue).strip().splitlines() or [''])[0]}"
    else:
        cell = "a cell (the kernel stopped)"
        what = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    tail = f"; the executed notebook is kept at {kept}" if kept else ""
    return f"notebook {name} (generation {generation}) failed at {cell}: {what}{tail}"


def read_notebook(path: str | Path) -> dict:
    """A notebook's JSON, or the kit's error saying why the file is not one."""
    from .data import parse_json, read_text

    nb = parse_json(read_text(path, "a notebook (.ipynb)"), path, None, "a notebook's JSON")
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise KitError(f"{path}: expected a notebook (a JSON object with 'cells'), got something else")
    return nb


def strip_outputs(path: str | Path) -> bool:
    """Clear outputs and execution counts of a notebook in place; True if it changed."""
    path = Path(path)
    nb = read_notebook(path)
    changed = False
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                changed = True
            cell["outputs"], cell["execution_count"] = [], None
    if changed:
        from .paths import write_text

        write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed
