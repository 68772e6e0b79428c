import json

import pytest

from kit.errors import KitError
from kit.paths import Run, atomic_path, read_json, write_json


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
