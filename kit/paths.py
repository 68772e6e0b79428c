"""The run directory: the one place that knows where every artifact lives, and how it is written.

Layout::

    <run_dir>/manifest.json                       parameters, seed, versions, git commit, per-generation status
    <run_dir>/gen_<g>/<stage>/metrics.json        one per stage
    <run_dir>/gen_<g>/<stage>/...                 the stage's datasets and adapters, each by name (ARTIFACTS,
                                                  Run.artifact; kit/method.py says which step writes and reads it)
    <run_dir>/gen_<g>/notebooks/<name>.ipynb      executed notebooks (the flywheel writes these)
    <run_dir>/replies/<digest>.json               policy replies to fixed prompt sets, shared by the generations
    <run_dir>/tracking/gen_<g>/<notebook>-<n>/    TensorBoard logs, with report_to="tensorboard" (kit.training)
    <run_dir>/export/gen_<g>/                     `python -m kit export`: merged model, adapter, card, datasets

Every write is atomic: the content goes to a temporary sibling first and is renamed into place, so a crash
leaves the previous artifact or none, never half of one. What a killed process left behind is removed by the next
write of the same artifact and by `Run.clean_interrupted()`, which the flywheel calls before it runs anything.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import KitError

# Every artifact a notebook writes or reads, by name. A name is its path under gen_<g>/ with "/" read as ".", so
# it says where it is: "policy.rs.candidates" is gen_<g>/policy/rs/candidates, "eval.metrics.json" is
# gen_<g>/eval/metrics.json (artifact_path). Which step of the method writes and reads each one is kit/method.py's
# table. Run.artifact() resolves a name; a name not listed here is an error, not a new folder.
ARTIFACTS = (
    # the world tour (notebook 01) and the quickstart (00)
    "world.sessions.jsonl", "world.eval_prompts", "world.metrics.json", "world.quickstart.json",
    # step 1, curation (02): the deployed policy's traffic, redacted; the prompts curation keeps
    "traffic.conversations", "traffic.conversations.jsonl", "traffic.metrics.json",
    "curation.train_prompts", "curation.eval_prompts", "curation.metrics.json",
    # step 2, annotation (02)
    "annotation.train_pairs", "annotation.eval_pairs", "annotation.eval_consensus", "annotation.eval_single_rater",
    "annotation.ratings", "annotation.candidates", "annotation.metrics.json",
    # step 3, reward models (03)
    "rewards.pointwise", "rewards.pairwise", "rewards.signals.continue", "rewards.signals.thumb_up",
    "rewards.metrics.json",
    # step 4, policy training (04, 05)
    "policy.rs.prompts", "policy.rs.candidates", "policy.rs.sft_data", "policy.rs.metrics.json",
    "policy.sft.adapter", "policy.sft.merged", "policy.sft.metrics.json",
    "policy.dpo.adapter", "policy.dpo.metrics.json", "policy.rl.adapter", "policy.rl.metrics.json",
    # steps 6 and 7, offline evaluation (06) and the A/B test (07)
    "eval.metrics.json", "ab.events.jsonl", "ab.metrics.json",
)
FILE_TYPES = (".json", ".jsonl")


def artifact_path(name: str) -> str:
    """An artifact's path under gen_<g>/: its name with "/" for "." (a file keeps its extension)."""
    stem, ext = next(((name[:-len(e)], e) for e in FILE_TYPES if name.endswith(e)), (name, ""))
    return stem.replace(".", "/") + ext


# The run's own files, shared by the generations: named like the artifacts, resolved under <run_dir>/.
RUN_FILES = ("manifest.json",)
STAGES = tuple(dict.fromkeys(name.split(".")[0] for name in ARTIFACTS)) + ("notebooks",)   # gen_<g>/'s folders
PACKAGES = ("characterflywheel-kit", "torch", "transformers", "trl", "peft", "datasets", "accelerate",
            "bitsandbytes", "sentence-transformers", "unsloth", "numpy", "papermill")


def cache_dir() -> Path:
    """Where converted models live: $KIT_CACHE, else ~/.cache/characterflywheel-kit."""
    root = os.environ.get("KIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "characterflywheel-kit")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def bundled(inside: str, checkout: str, marker: str, env: str) -> Path:
    """A folder the kit ships (the notebooks, the samples): $<env> if set; in a checkout, `checkout` beside the
    package; installed from a wheel, kit/<inside>/ (pyproject.toml maps the folder there as package data)."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    for here in (repo_root() / checkout, Path(__file__).resolve().parent / inside):
        if (here / marker).exists():
            return here
    raise KitError(f"the kit's {checkout}/ is neither beside the package ({repo_root() / checkout}) nor installed "
                   f"with it; set {env} to its location")


def samples_dir() -> Path:
    """data_samples/: the 14 cards, conversations and preference pairs."""
    return bundled("data_samples", "data_samples", "cards", "KIT_SAMPLES")


def is_checkout() -> bool:
    """Whether the kit runs from a git checkout (rather than installed from a wheel)."""
    return (repo_root() / ".git").exists() and (repo_root() / "kit" / "__init__.py").exists()


# ---------------------------------------------------------------------------------------------- atomic writes
# A write goes to .<name>.tmp-<pid>-<random>/ beside its target. A process killed mid-write leaves that folder;
# the next write of the same target, or Run.clean_interrupted() at the start of a run, removes it once the pid is
# no longer running.
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[^/]+$")
_STARTED = time.time()   # a temporary older than this process is not this process's, whatever its pid says


def _interrupted(tmpdir: Path) -> bool:
    m = _TMP_RE.match(tmpdir.name)
    if not m or not tmpdir.is_dir():
        return False
    pid = int(m["pid"])
    if pid == os.getpid():   # pids are reused: ours only if made since this process started
        return tmpdir.stat().st_mtime < _STARTED - 1
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # alive, another user's
        return False
    return False


def clean_interrupted(path: str | Path) -> list[Path]:
    """Remove what interrupted writes of `path` left behind (temporaries of processes no longer running). If a
    crash came between moving the previous version aside and moving the new one in, the previous one is put
    back: a crash leaves the previous artifact or none, never half of one."""
    path = Path(path)
    removed = []
    for tmpdir in sorted(path.parent.glob(f".{glob.escape(path.name)}.tmp-*")):
        if _interrupted(tmpdir):
            old = tmpdir / f".old-{path.name}"
            if old.exists() and not path.exists():
                os.replace(old, path)
            shutil.rmtree(tmpdir, ignore_errors=True)
            removed.append(tmpdir)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (file or folder) to write; rename it into place on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise KitError(f"{path.parent}: expected a folder to write {path.name} in, got a file") from None
    clean_interrupted(path)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    tmp = tmpdir / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = tmpdir / f".old-{path.name}"
            os.replace(path, old)
            os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise KitError(f"{path}: not found (has the stage that writes it run?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KitError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _json_default(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# ---------------------------------------------------------------------------------------------- the run
class Run:
    """A run directory. `Run(path).artifact(g, "rewards.pointwise")` is where generation g's pointwise reward model
    goes; `Run(path).stage(g, "rewards")` is the folder of its stage."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise KitError(f"{self.root}: expected a run directory (a folder), got a file")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KitError(f"{self.root}: cannot create the run directory ({exc.strerror})") from None

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    def gen(self, generation: int) -> Path:
        if int(generation) < 0:
            raise KitError(f"generation must be >= 0, got {generation}")
        return self.root / f"gen_{int(generation)}"

    def stage(self, generation: int, stage: str, *parts: str, create: bool = True) -> Path:
        if stage not in STAGES:
            raise KitError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        path = self.gen(generation) / stage
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path.joinpath(*parts)

    def artifact(self, generation: int, name: str, *, label: str | None = None, create: bool = True) -> Path:
        """Where artifact `name` of generation `generation` lives: <run_dir>/gen_<g>/<its path> (artifact_path), e.g.
        `run.artifact(0, "annotation.candidates")` -> gen_0/annotation/candidates. `label`: a labelled variant in
        a folder of its own inside the stage's (the flywheel's cumulative A/B test: gen_<g>/ab/<label>/...).
        The run's own files (RUN_FILES: manifest.json) ignore the generation. `create` makes the folder the
        artifact goes in."""
        if name in RUN_FILES and label is None:
            return self.root / name
        if name not in ARTIFACTS:
            import difflib

            close = difflib.get_close_matches(name, ARTIFACTS + RUN_FILES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise KitError(f"unknown artifact {name!r}{hint}; kit.paths.ARTIFACTS lists them")
        stage, *rest = artifact_path(name).split("/")
        if label is not None:
            if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", label):
                raise KitError(f"artifact label {label!r}: expected a plain folder name (letters, digits, _ . -)")
            rest = [label] + rest
        path = self.gen(generation) / stage / Path(*rest)
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def reply_cache(self) -> Path:
        """<run_dir>/replies/: every policy reply generated for a fixed prompt set (the held-out checks, the A/B
        pool), stored under a digest of the weights, the prompts and the sampling settings
        (kit.evaluation.generate_for). Shared by the generations: the deployed policy's replies were generated when
        it was the candidate, and the base model's once."""
        path = self.root / "replies"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def metrics_path(self, generation: int, stage: str, sub: str | None = None) -> Path:
        return self.stage(generation, stage, *([sub] if sub else []), "metrics.json", create=False)

    def write_metrics(self, generation: int, stage: str, metrics: dict, sub: str | None = None) -> Path:
        """<gen>/<stage>/metrics.json, or <gen>/<stage>/<sub>/metrics.json for a step inside a stage
        (policy/rs, policy/sft, ...). The manifest records when each was written."""
        path = write_json(self.stage(generation, stage, *([sub] if sub else []), "metrics.json"), metrics)
        self.mark_stage(generation, f"{stage}/{sub}" if sub else stage)
        return path

    def write_json(self, generation: int, name: str, obj) -> Path:
        """Write JSON artifact `name` (e.g. "world.quickstart.json") of generation `generation`, atomically."""
        return write_json(self.artifact(generation, name), obj)

    def read_metrics(self, generation: int, stage: str, sub: str | None = None) -> dict:
        return read_json(self.metrics_path(generation, stage, sub))

    def has_metrics(self, generation: int, stage: str, sub: str | None = None) -> bool:
        return self.metrics_path(generation, stage, sub).exists()

    def clean_interrupted(self) -> list[Path]:
        """Remove every temporary that an interrupted write left anywhere in the run (see `clean_interrupted`)."""
        removed = []
        for folder, dirs, _ in os.walk(self.root):
            for name in list(dirs):
                m = _TMP_RE.match(name)
                if m:
                    dirs.remove(name)   # never descend into a temporary
                    removed += clean_interrupted(Path(folder) / m["name"])
        return removed

    # -- manifest ----------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {"generations": {}}
        return read_json(self.manifest_path)

    def update_manifest(self, **fields) -> dict:
        manifest = self.manifest()
        manifest.update(fields)
        manifest.setdefault("generations", {})
        manifest.setdefault("created", _now())
        manifest["updated"] = _now()
        manifest.setdefault("versions", package_versions())
        manifest.setdefault("git_commit", git_commit())
        write_json(self.manifest_path, manifest)
        return manifest

    def generation_status(self, generation: int) -> dict:
        return self.manifest().get("generations", {}).get(str(int(generation)), {})

    def set_generation(self, generation: int, **fields) -> dict:
        manifest = self.manifest()
        gens = manifest.setdefault("generations", {})
        entry = gens.setdefault(str(int(generation)), {"stages": {}})
        entry.update(fields)
        return self.update_manifest(generations=gens)

    def deployed(self, generation: int) -> dict:
        """The policy serving traffic while generation `generation` is built: the newest promoted candidate of an
        earlier generation, or the base model. {"generation": g or None, "adapter": path or None}."""
        gens = self.manifest().get("generations", {})
        for g in sorted((int(k) for k in gens), reverse=True):
            entry = gens[str(g)]
            if g < generation and entry.get("promoted") and entry.get("candidate_adapter"):
                return {"generation": g, "adapter": entry["candidate_adapter"]}
        return {"generation": None, "adapter": None}

    def mark_stage(self, generation: int, stage: str) -> None:
        entry = self.generation_status(generation)
        stages = dict(entry.get("stages", {}))
        stages[stage] = _now()
        self.set_generation(generation, stages=stages)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import platform

    out["python"] = platform.python_version()
    return out


def git_commit() -> str | None:
    """The checkout's commit (+ "-dirty"); None when the kit is installed rather than run from a checkout (the
    manifest's package versions say which kit it was)."""
    if not is_checkout():
        return None
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True, timeout=5)
        commit = res.stdout.strip()
        if res.returncode != 0 or not commit:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(),
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
