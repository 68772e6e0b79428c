"""Where a user's records come from (kit/sources.py): a JSONL file, a dataset saved to disk, a Hub dataset, each
with a column mapping. The files are ones a user has: tests/user_files/sharegpt.jsonl is ShareGPT-style logs of the
hand-written cast in tests/user_files/cards/."""
import json
from pathlib import Path

import pytest

from kit import sources
from kit.data import load_conversations
from kit.errors import DataError, ParameterError
from kit.world.characters import load_cards

USER = Path(__file__).parent / "user_files"
CARDS = load_cards(USER / "cards")
SHAREGPT = {"path": str(USER / "sharegpt.jsonl"), "columns": "sharegpt", "defaults": {"source": "user"}}


def _with_character(spec: dict) -> dict:
    """The ShareGPT preset, plus the file's own column naming the character."""
    out = sources.check_source(spec)
    return dict(spec, columns=dict(out["columns"], character="character_id"), roles=out["roles"])


def test_sharegpt_jsonl_maps_to_the_conversation_contract():
    convs = load_conversations(_with_character(SHAREGPT), CARDS)
    assert len(convs) == 6 and [c["character_id"] for c in convs][:3] == ["selene", "selene", "bram"]
    assert convs[0]["conversation_id"] == "row-1" and convs[0]["source"] == "user", "defaulted where absent"
    assert convs[2]["messages"][0]["role"] == "system" and convs[2]["messages"][1] == {
        "role": "user", "content": "can you fix my sword"}


def test_a_dataset_saved_to_disk_reads_like_its_jsonl(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [json.loads(line) for line in (USER / "sharegpt.jsonl").read_text().splitlines()]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "logs"))
    from_jsonl = load_conversations(_with_character(SHAREGPT), CARDS)
    from_disk = load_conversations(_with_character(dict(SHAREGPT, path=str(tmp_path / "logs"))), CARDS)
    assert from_disk == from_jsonl, "nulls Arrow adds for missing fields are dropped"
    DatasetDict({"test": Dataset.from_list(rows[:2])}).save_to_disk(str(tmp_path / "dict"))
    assert len(load_conversations(_with_character(dict(SHAREGPT, path=str(tmp_path / "dict"))), CARDS)) == 2
    with pytest.raises(DataError, match="field 'split': expected one of test"):
        load_conversations(_with_character(dict(SHAREGPT, path=str(tmp_path / "dict"), split="train")), CARDS)


def test_a_hub_id_goes_to_load_dataset_with_its_arguments(monkeypatch):
    """No hub here: load_dataset is replaced, and the test checks what it was asked and that the rows map."""
    import datasets

    rows = [json.loads(line) for line in (USER / "sharegpt.jsonl").read_text().splitlines()]
    asked = {}

    def fake_load_dataset(path, **kwargs):
        asked.update(kwargs, path=path)
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    spec = _with_character({"path": "someone/roleplay-logs", "name": "en", "split": "test", "columns": "sharegpt"})
    assert sources.kind_of(sources.check_source(spec)) == "hub"
    assert len(load_conversations(spec, CARDS)) == 6
    assert asked == {"path": "someone/roleplay-logs", "name": "en", "split": "test"}
    asked.clear()
    with pytest.raises(DataError, match="someone/plain:1: field 'character_id'"):
        load_conversations("someone/plain")   # a bare id: split train, no mapping, so ShareGPT rows do not fit
    assert asked == {"path": "someone/plain", "split": "train"}


def test_what_is_not_a_source_is_said(tmp_path):
    assert sources.kind_of(sources.check_source("no/such/file.jsonl")) == "file"
    with pytest.raises(DataError, match="no such file"):
        load_conversations(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ParameterError, match="parameter 'traffic_path.colums'"):
        sources.check_source({"path": "x.jsonl", "colums": {}}, "traffic_path")
    with pytest.raises(ParameterError, match="parameter 'source.columns'"):
        sources.check_source({"path": "x.jsonl", "columns": "alpaca"})
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="got a folder"):
        load_conversations(str(tmp_path / "folder"))
