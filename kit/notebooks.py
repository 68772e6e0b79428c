"""Executing the stage notebooks with papermill, into the run directory."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from . import method
from .errors import KitError
from .paths import Run, atomic_path, bundled

# The flywheel's order comes from the method's table (kit/method.py).
# Run once, before the first generation: the tour of the world, which also measures where the base model starts.
SETUP_NOTEBOOKS = method.notebooks("before")
# The method's order, once per generation. A stage notebook not written yet is skipped, and the runner says so.
STAGE_NOTEBOOKS = method.notebooks("generation")
# Run once, after the last generation: the trajectory across generations.
FINAL_NOTEBOOKS = method.notebooks("after")


def notebooks_dir() -> Path:
    """notebooks/ of a checkout, the copy installed with the package, or $KIT_NOTEBOOKS."""
    return bundled("notebook_files", "notebooks", "02_curation.ipynb", "KIT_NOTEBOOKS")


# The kernel papermill starts logs, at every notebook, that it "is running over TCP without encryption". It listens on
# 127.0.0.1 only, and its messages are signed with a key in a connection file only this user can read; so the warning
# tells a batch user nothing they can act on, and the kernel's own log is kept to errors. Python warnings from the
# notebooks' code are not affected (they are cell outputs).
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def notebook_path(name: str) -> Path:
    return notebooks_dir() / f"{name}.ipynb"


def parameters_of(path: str | Path) -> dict:
    """The names and defaults of a notebook's `parameters` cell (as papermill sees them)."""
    import papermill as pm

    return {k: v["default"] for k, v in pm.inspect_notebook(str(path)).items()}


def execute(name: str, run: Run, generation: int, parameters: dict, *, kernel: str = "python3",
            progress: bool = True, output_name: str | None = None, status: str | None = None) -> Path:
    """Run notebooks/<name>.ipynb with `parameters` into <run>/gen_<g>/notebooks/<output_name or name>.ipynb
    (atomically), in the run directory. If a cell fails, the executed notebook with its traceback is kept as
    <output>.failed.ipynb and a KitError says, in one line, which notebook, which cell and what error.

    `status`: the line to say it runs under (the flywheel's "[gen_0 of 3] 2/6 02_curation"). With `progress`, on a
    terminal that line shows the cell running and the time so far, rewritten in place; in a log, it is printed
    once. Papermill's own cell counter stays off."""
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
    with atomic_path(out) as tmp, _Ticker(status, tmp, progress):
        try:
            pm.execute_notebook(str(src), str(tmp), parameters=parameters, kernel_name=kernel, progress_bar=False,
                                cwd=str(run.root), log_output=False, extra_arguments=KERNEL_ARGUMENTS)
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


class _Ticker:
    """The line a running notebook stands on: on a terminal, rewritten every second with the cell papermill is
    running (read from the output it saves at each cell) and the time so far; elsewhere printed once."""

    def __init__(self, status: str | None, output: Path, progress: bool):
        self.status, self.output = status, output
        self.live = bool(status) and progress and sys.stdout.isatty()
        self.done = threading.Event()

    def __enter__(self):
        if self.status and not self.live:
            print(f"{self.status}: running ...", flush=True)
        if self.live:
            self.start = time.perf_counter()
            self.thread = threading.Thread(target=self._tick, daemon=True)
            self.thread.start()
        return self

    def _cell(self) -> str:
        try:
            cells = [c for c in json.loads(self.output.read_text(encoding="utf-8"))["cells"]
                     if c.get("cell_type") == "code"]
        except (OSError, ValueError, KeyError, TypeError):   # not written yet, or being written
            return ""
        states = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells]
        begun = sum(s in ("running", "completed") for s in states)
        return f"cell {begun}/{len(cells)}, " if begun else ""

    def _tick(self) -> None:
        while not self.done.wait(1.0):
            line = f"{self.status}: {self._cell()}{time.perf_counter() - self.start:.0f} s"
            sys.stdout.write("\r" + line[:150].ljust(80))
            sys.stdout.flush()

    def __exit__(self, *exc):
        if self.live:
            self.done.set()
            self.thread.join()
            sys.stdout.write("\r" + " " * 80 + "\r")
            sys.stdout.flush()
        return False


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
