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


def test_a_byte_order_mark_is_read_not_refused(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\r\n").encode())   # as Windows tools write it
    assert load_conversations(path)[0]["conversation_id"] == "c1"


def test_roles_alternate_after_an_optional_system_message(tmp_path):
    system = {"role": "system", "content": "be nice"}
    ok = dict(GOOD, messages=[system] + GOOD["messages"] + [{"role": "user", "content": "and?"},
                                                            {"role": "assistant", "content": "more"}])
    assert load_conversations(write_jsonl(tmp_path / "ok.jsonl", [ok]))
    for k, messages in ((0, GOOD["messages"][::-1]), (1, [system, GOOD["messages"][1]]),
                        (2, GOOD["messages"] + [GOOD["messages"][1]])):
        with pytest.raises(DataError, match=rf"field 'messages\[{k}\].role'"):
            load_conversations(write_jsonl(tmp_path / "bad.jsonl", [dict(GOOD, messages=messages)]))


def test_cast_and_duplicates_are_checked_with_their_lines(tmp_path):
    from kit.world.characters import load_cards

    cards = load_cards()
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD, dict(GOOD, conversation_id="c2", character_id="gandalf")])
    assert len(load_conversations(path)) == 2, "without a cast, any character id"
    with pytest.raises(DataError, match=r"c.jsonl:2: field 'character_id': expected one of the cast"):
        load_conversations(path, cards)
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'conversation_id': .*line 1 has it"):
        load_conversations(write_jsonl(tmp_path / "d.jsonl", [GOOD, GOOD]))


def test_import_writes_redacted_text_only(tmp_path):
    leaky = dict(GOOD, user_name="Sam, 12 Oak Street, Austin", notes="ssn 123-45-6789",
                 messages=[{"role": "user", "content": "mail me at sam.lee@gmail.com"}, GOOD["messages"][1]])
    src = write_jsonl(tmp_path / "raw.jsonl", [leaky])
    out = tmp_path / "run" / "c.jsonl"
    import_conversations(src, out)
    text = out.read_text()
    assert "sam.lee" not in text and "Oak Street" not in text and "6789" not in text
    assert "[EMAIL]" in text and "[ADDRESS]" in text and "[GOV_ID]" in text
    assert "sam.lee@gmail.com" in src.read_text(), "the user's own file stays as it was"


USER = __import__("pathlib").Path(__file__).parent / "user_files"


def test_conversations_get_source_and_id_where_absent(tmp_path):
    bare = {"character_id": "luna", "messages": GOOD["messages"]}
    convs = load_conversations(write_jsonl(tmp_path / "c.jsonl", [bare, bare]))
    assert [(c["conversation_id"], c["source"]) for c in convs] == [("row-1", "user"), ("row-2", "user")]
    with pytest.raises(DataError, match="field 'conversation_id'"):
        load_conversations(write_jsonl(tmp_path / "n.jsonl", [dict(bare, conversation_id=None)]))


def test_trl_standard_and_implicit_prompt_preferences():
    from kit.world.characters import load_cards

    pairs = load_preferences(USER / "preferences_trl.jsonl", load_cards(USER / "cards"))
    plain, implicit, longer = pairs
    assert plain["prompt"] == [{"role": "user", "content": "will I get the job?"}]
    assert plain["rejected"] == [{"role": "assistant", "content": "I am an AI and cannot predict the future."}]
    assert implicit["prompt"] == [{"role": "user", "content": "can you fix it?"}] and len(implicit["chosen"]) == 1
    assert [m["role"] for m in longer["prompt"]] == ["user", "assistant", "user"]
    assert longer["chosen"][0]["content"].startswith("Cold water")


def test_a_real_ab_log_maps_arms_and_counts_days_from_timestamps(tmp_path):
    events = load_ab_log(USER / "ab_log_90_10.jsonl", {"A": "control", "B": "treatment"})
    assert {e["arm"] for e in events} == {"control", "treatment"}
    assert min(e["day"] for e in events) == 0 and max(e["day"] for e in events) == 2
    first = json.loads((USER / "ab_log_90_10.jsonl").read_text().splitlines()[0])
    assert first["timestamp"].startswith("2026-11-17") and events[0]["day"] == 1
    epoch = [{"type": "exposure", "user_id": "u1", "arm": "A", "timestamp": 1_700_000_000},
             {"type": "message", "user_id": "u1", "arm": "A", "timestamp": 1_700_000_000_000 + 86_400_000}]
    days = [e["day"] for e in load_ab_log(write_jsonl(tmp_path / "e.jsonl", epoch), {"A": "control"})]
    assert days == [0, 1], "seconds and milliseconds since 1970"
    with pytest.raises(DataError, match=":1: field 'arm'"):
        load_ab_log(USER / "ab_log_90_10.jsonl")
