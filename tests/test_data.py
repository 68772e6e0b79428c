import json

import pytest

from kit.data import (import_conversations, load_ab_log, load_conversations, load_preferences, write_jsonl)
from kit.errors import DataError

GOOD = {"conversation_id": "c1", "character_id": "luna", "source": "user",
        "messages": [{"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "hello!", "signals": {"continue": 1, "thumb_up": 0}}]}


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_good_file_loads(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD, dict(GOOD, conversation_id="c2", source="internal")])
    assert [c["conversation_id"] for c in load_conversations(path)] == ["c1", "c2"]


@pytest.mark.parametrize("bad_line, expect", [
    ('{"conversation_id": "c9", oops}', r"bad.jsonl:2: expected one JSON object per line"),
    (json.dumps(dict(GOOD, messages=[{"content": "hi"}, GOOD["messages"][1]])),
     r"bad.jsonl:2: field 'messages\[0\].role': expected one of system, user, assistant \(it is missing\)"),
    (json.dumps(dict(GOOD, messages=[{"role": "narrator", "content": "hi"}, GOOD["messages"][1]])),
     r"bad.jsonl:2: field 'messages\[0\].role': expected one of system, user, assistant, got 'narrator'"),
    (json.dumps(dict(GOOD, messages=[{"role": "user", "content": "  "}, GOOD["messages"][1]])),
     r"bad.jsonl:2: field 'messages\[0\].content': expected a non-empty string"),
    (json.dumps(dict(GOOD, source="web")), r"bad.jsonl:2: field 'source': expected 'user' or 'internal'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "character_id"}), r"field 'character_id'"),
    (json.dumps(dict(GOOD, messages=[GOOD["messages"][0], dict(GOOD["messages"][1], signals={"love": 1})])),
     r"field 'messages\[1\].signals.love'"),
])
def test_malformed_conversations_name_line_and_field_and_write_nothing(tmp_path, bad_line, expect):
    src = _write(tmp_path / "bad.jsonl", [json.dumps(GOOD), bad_line])
    out = tmp_path / "out" / "conversations.jsonl"
    with pytest.raises(DataError, match=expect) as err:
        import_conversations(src, out)
    assert "\n" not in str(err.value), "one line"
    assert not out.exists() and not out.parent.exists() or not any(out.parent.iterdir())


def test_preferences_contract(tmp_path):
    pair = {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hey!"}],
            "rejected": [{"role": "assistant", "content": "no."}]}
    path = write_jsonl(tmp_path / "p.jsonl", [pair])
    assert load_preferences(path)[0]["chosen"][0]["content"] == "hey!"
    same = dict(pair, rejected=pair["chosen"])
    with pytest.raises(DataError, match="p2.jsonl:1: field 'rejected'"):
        load_preferences(write_jsonl(tmp_path / "p2.jsonl", [same]))
    ends_with_assistant = dict(pair, prompt=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}])
    with pytest.raises(DataError, match=r"prompt\[-1\].role"):
        load_preferences(write_jsonl(tmp_path / "p3.jsonl", [ends_with_assistant]))


def test_ab_log_contract(tmp_path):
    ok = {"type": "exposure", "user_id": "u1", "arm": "control", "day": 0}
    assert load_ab_log(write_jsonl(tmp_path / "a.jsonl", [ok, dict(ok, type="message", day=3)]))
    with pytest.raises(DataError, match="b.jsonl:1: field 'arm'"):
        load_ab_log(write_jsonl(tmp_path / "b.jsonl", [dict(ok, arm="A")]))
    with pytest.raises(DataError, match="c.jsonl:1: field 'day'"):
        load_ab_log(write_jsonl(tmp_path / "c.jsonl", [dict(ok, day=-1)]))


def test_samples_follow_the_contracts():
    from kit.paths import samples_dir

    assert len(load_conversations(samples_dir() / "conversations.jsonl")) >= 100
    assert len(load_preferences(samples_dir() / "preferences.jsonl")) >= 50


def test_an_empty_dataset_round_trips(tmp_path):
    from kit.data import load_dataset_dir, save_dataset

    save_dataset([], tmp_path / "none")
    assert len(load_dataset_dir(tmp_path / "none")) == 0
