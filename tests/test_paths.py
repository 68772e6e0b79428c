import json
import os
from pathlib import Path

import pytest

from kit.errors import KitError
from kit.paths import ARTIFACTS, STAGES, Run, artifact_path, atomic_path, read_json, write_json


def test_layout_and_metrics(tmp_path):
    run = Run(tmp_path / "run")
    assert run.stage(2, "rewards") == run.root / "gen_2" / "rewards"
    run.write_metrics(2, "rewards", {"accuracy": 0.7})
    assert run.read_metrics(2, "rewards") == {"accuracy": 0.7}
    manifest = run.manifest()
    assert "rewards" in manifest["generations"]["2"]["stages"]
    assert manifest["versions"]["transformers"]
    assert "git_commit" in manifest


def test_unknown_stage_and_negative_generation(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(KitError, match="unknown stage"):
        run.stage(0, "nope")
    with pytest.raises(KitError, match="generation"):
        run.gen(-1)


def test_artifacts_resolve_by_name(tmp_path):
    run = Run(tmp_path / "run")
    assert run.artifact(0, "annotation.candidates") == run.root / "gen_0" / "annotation" / "candidates"
    assert run.artifact(1, "rewards.signals.thumb_up") == run.root / "gen_1" / "rewards" / "signals" / "thumb_up"
    assert run.artifact(2, "eval.metrics.json") == run.root / "gen_2" / "eval" / "metrics.json"
    assert run.artifact(1, "ab.events.jsonl", label="cumulative") == run.root / "gen_1" / "ab" / "cumulative" / \
        "events.jsonl"
    assert run.artifact(3, "manifest.json") == run.manifest_path
    assert run.artifact(0, "policy.rs.prompts").parent.is_dir(), "its folder is made"
    assert not run.artifact(4, "policy.rl.adapter", create=False).parent.exists()
    with pytest.raises(KitError, match="did you mean annotation.candidates"):
        run.artifact(0, "annotation.candidate")
    with pytest.raises(KitError, match="plain folder name"):
        run.artifact(0, "ab.events.jsonl", label="../x")


def test_every_artifact_is_in_a_stage_folder_and_metrics_where_write_metrics_puts_them(tmp_path):
    run = Run(tmp_path / "run")
    for name in ARTIFACTS:
        path = run.artifact(0, name, create=False)
        assert path.relative_to(run.gen(0)).parts[0] in STAGES and artifact_path(name).replace("/", ".") == name
        if name.endswith(".metrics.json"):
            stage, *sub = artifact_path(name).split("/")[:-1]
            assert path == run.metrics_path(0, stage, "/".join(sub) or None)
    assert len(set(ARTIFACTS)) == len(ARTIFACTS)


def test_atomic_write_leaves_previous_version_on_crash(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary left behind


def test_atomic_directory_replace(tmp_path):
    target = tmp_path / "ds"
    for version in (1, 2):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "data.txt").write_text(str(version))
    assert (target / "data.txt").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  oops\n}")
    with pytest.raises(KitError, match=r"bad.json:2"):
        read_json(bad)
    with pytest.raises(KitError, match="not found"):
        read_json(tmp_path / "missing.json")


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_killed_midway_leaves_nothing_a_rerun_does_not_clean(tmp_path):
    """A real SIGKILL while a dataset folder is half written: the previous version stays, the temporary is left,
    and the next write of the same artifact removes it."""
    import subprocess
    import sys

    target = tmp_path / "ds"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "data.txt").write_text("v1")
    script = (f"import os, signal\nfrom kit.paths import atomic_path\n"
              f"with atomic_path({str(target)!r}) as tmp:\n"
              f"    tmp.mkdir(); (tmp / 'data.txt').write_text('v2, half')\n"
              f"    os.kill(os.getpid(), signal.SIGKILL)\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[1])
    assert res.returncode == -9
    assert (target / "data.txt").read_text() == "v1"
    left = [p.name for p in tmp_path.iterdir() if p.name != "ds"]
    assert len(left) == 1 and left[0].startswith(".ds.tmp-"), left
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "data.txt").write_text("v3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and (target / "data.txt").read_text() == "v3"


def test_a_crash_between_the_two_renames_puts_the_previous_version_back(tmp_path):
    run = Run(tmp_path / "run")
    target = run.artifact(0, "curation.train_prompts")
    stale = target.parent / f".train_prompts.tmp-{_dead_pid()}-x1y2"
    (stale / ".old-train_prompts").mkdir(parents=True)
    (stale / ".old-train_prompts" / "data.txt").write_text("previous")
    other = run.root / f".manifest.json.tmp-{_dead_pid()}-abc"   # a temporary whose target is never written again
    other.mkdir()
    (other / "manifest.json").write_text('{"half')
    live = run.root / f".x.json.tmp-{os.getpid()}-live"   # this process's own, in progress: kept
    live.mkdir()
    assert sorted(p.name for p in run.clean_interrupted()) == sorted([stale.name, other.name])
    assert (target / "data.txt").read_text() == "previous"
    assert not stale.exists() and not other.exists() and live.exists()


def test_a_run_directory_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(KitError, match="expected a run directory"):
        Run(tmp_path / "f")
    with pytest.raises(KitError, match="expected a folder to write"):
        write_json(tmp_path / "f" / "a.json", {})


def test_the_kit_works_installed_from_a_wheel(tmp_path):
    """Built as a wheel and installed (not editable) into a folder of its own, the kit finds its notebooks and
    samples inside the package, reads no repository and claims no git commit. The build runs on a copy, so the
    checkout gets no build/ or egg-info."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("kit", "notebooks", "data_samples"):
        shutil.copytree(root / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                          str(src)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, capture_output=True, cwd=tmp_path)
    check = ("import kit, json\n"
             "from kit.notebooks import notebooks_dir\n"
             "from kit.paths import samples_dir, git_commit\n"
             "from kit.world.characters import load_cards\n"
             "print(json.dumps([kit.__file__, str(notebooks_dir()), len(list(notebooks_dir().glob('*.ipynb'))),\n"
             "                  str(samples_dir()), len(load_cards()), git_commit()]))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KIT_NOTEBOOKS", "KIT_SAMPLES")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path, env=env,
                         check=True).stdout
    where, notebooks, n_notebooks, samples, n_cards, commit = json.loads(out)
    site = str(tmp_path / "site" / "kit")
    assert where.startswith(site) and notebooks.startswith(site) and samples.startswith(site)
    assert n_notebooks == len(list((root / "notebooks").glob("*.ipynb"))) and n_cards == 14 and commit is None
    help_text = subprocess.run([sys.executable, "-m", "kit", "flywheel", "--help"], capture_output=True, text=True,
                               cwd=tmp_path, env=env, check=True).stdout
    assert "--params FILE" in help_text
