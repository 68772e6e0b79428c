"""The corpus of malformed inputs (tests/bad_inputs/, written by its make_corpus.py) through every public loader and
the command line: each input gives the kit's own error in one line, naming the file and saying what is wrong
(expected.json holds the piece of the message each must contain), and nothing is written."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.abtest import import_log
from kit.annotation import import_labels
from kit.cli import main
from kit.data import import_conversations, load_ab_log, load_conversations, load_preferences
from kit.errors import KitError
from kit.rejection import import_sft
from kit.world.characters import load_card, load_cards

CORPUS = Path(__file__).parent / "bad_inputs"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
CARDS = load_cards()
GOOD_CONVERSATIONS = Path(__file__).parents[1] / "data_samples" / "conversations.jsonl"


def _cases(kind: str) -> list[str]:
    return sorted(k for k in EXPECTED if k.startswith(kind + "/"))


# Every public loader of each kind of user file; `dest` is where a loader that writes would write.
LOADERS = {
    "conversations": {"load_conversations": lambda p, dest: load_conversations(p),
                      "load_conversations with the cast": lambda p, dest: load_conversations(p, CARDS),
                      "import_conversations": lambda p, dest: import_conversations(p, dest / "c.jsonl", CARDS),
                      "rejection.import_sft": lambda p, dest: import_sft(p, CARDS)},
    "preferences": {"load_preferences": lambda p, dest: load_preferences(p),
                    "load_preferences with the cast": lambda p, dest: load_preferences(p, CARDS),
                    "annotation.import_labels": lambda p, dest: import_labels(p, CARDS)},
    "ab_logs": {"load_ab_log": lambda p, dest: load_ab_log(p), "abtest.import_log": lambda p, dest: import_log(p)},
    "cards": {"load_card": lambda p, dest: load_card(p), "load_cards": lambda p, dest: load_cards(_alone(p, dest))},
}
CAST_AWARE = {"load_conversations with the cast", "import_conversations", "rejection.import_sft",
              "load_preferences with the cast", "annotation.import_labels"}


def _alone(path: Path, dest: Path) -> Path:
    """A folder holding only this card: load_cards reads folders."""
    folder = dest.parent / "cards_alone"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (shutil.copytree if path.is_dir() else shutil.copy)(path, folder / path.name)
    return folder


def _check(message: str, name: str) -> None:
    assert "\n" not in message, message
    assert Path(name).name in message, message
    assert EXPECTED[name]["expect"] in message, message


def test_the_corpus_is_large_and_complete():
    assert len(EXPECTED) >= 60
    present = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*")}
    assert set(EXPECTED) - present == {"conversations/missing.jsonl"}, "every case but the missing file is there"
    assert present - set(EXPECTED) == set(), "every file is a case"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_loader_gives_a_clear_error_and_writes_nothing(name, tmp_path):
    kind = name.split("/")[0]
    dest = tmp_path / "out"
    dest.mkdir()
    for loader, load in LOADERS[kind].items():
        if EXPECTED[name]["needs_cast"] and loader not in CAST_AWARE:
            continue
        with pytest.raises(KitError) as err:
            load(CORPUS / name, dest)
        _check(str(err.value), name)
        assert not any(dest.iterdir()), f"{loader} wrote {list(dest.iterdir())}"


@pytest.mark.parametrize("name", _cases("conversations") + _cases("cards"))
def test_the_command_line_says_it_in_one_line(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = CORPUS / name
    argv = ["steerability", str(path)] if name.startswith("conversations/") else \
        ["steerability", str(GOOD_CONVERSATIONS), "--cards", str(_alone(path, tmp_path / "x"))]
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    _check(err.strip(), name)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("name", ["conversations/not_utf8.jsonl", "conversations/folder.jsonl",
                                  "conversations/character_unknown.jsonl", "conversations/empty.jsonl"])
def test_the_real_entry_point_prints_no_traceback(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))   # this checkout's kit, from any folder
    res = subprocess.run([sys.executable, "-m", "kit", "steerability", str(CORPUS / name)], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stdout == ""
    _check(res.stderr.strip(), name)
    assert not any(tmp_path.iterdir())
