import pytest

from kit.errors import KitError
from kit.privacy import (KINDS, OPTIONAL_RULES, assert_no_pii, filter_conversations, find_pii, pii_benchmark,
                         pii_scores, redact, redact_record, redact_records, rule_costs, unsafe_reason)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_benchmark_recall_and_precision_per_kind(seed):
    planted, lookalikes = pii_benchmark(seed=seed)
    assert len(planted) >= 400 and len(lookalikes) >= 400
    assert {p["kind"] for p in planted} == set(KINDS)
    scores = pii_scores(planted, lookalikes)
    for kind, s in scores["per_kind"].items():
        assert s["planted"] >= 50, kind
        assert s["recall"] >= 0.98, (kind, scores["missed"])
        assert s["precision"] >= 0.98, (kind, scores["flagged_lookalikes"])


def test_benchmark_is_not_the_world_prompt_bank():
    from kit.world.prompts import PII_TEMPLATES

    bank = {t.split("{v}")[0].strip().lower() for forms in PII_TEMPLATES.values() for t in forms}
    planted, _ = pii_benchmark(seed=0)
    assert not any(p["text"].lower().startswith(b) for p in planted for b in bank if b)


def test_each_optional_rule_earns_its_place():
    """Leaving a rule out either misses planted data or flags look-alikes: none is dead weight."""
    costs = rule_costs(seeds=(0, 1))
    assert set(costs) == set(OPTIONAL_RULES)
    for rule, cost in costs.items():
        assert cost["caught_without"] < cost["caught_with"] or \
            cost["false_positives_without"] > cost["false_positives_with"], rule


@pytest.mark.parametrize("text, kind, value", [
    ("12 oak street, austin is where i live", "address", "12 oak street, austin"),
    ("we're at 42 Oak Street Austin now", "address", "42 Oak Street Austin"),
    ("my ssn 123456789 ok", "gov_id", "123456789"),
    ("card 4111.1111.1111.1111 exp 09/27", "card", "4111.1111.1111.1111"),
    ("go to example.com/reset?token=abcdef123456 now", "secret_url", "example.com/reset?token=abcdef123456"),
    ("mail maria dot garcia at gmail dot com", "email", "maria dot garcia at gmail dot com"),
    ("or sam.lee [at] company [dot] io", "email", "sam.lee [at] company [dot] io"),
    ("the box is at 2001:db8::8a2e:370:7334", "ip", "2001:db8::8a2e:370:7334"),
])
def test_formats_real_chat_logs_contain(text, kind, value):
    assert [(f.kind, f.text) for f in find_pii(text)] == [(kind, value)]


def test_versions_stay_and_ips_are_ips():
    for text in ("version 10.2.3.4 of the game", "v10.2.3.4 is out", "build 192.168.1.2 broke it",
                 "see section 1.2.3.4", "ISBN 978-3-16-148410-0", "on 16.8.2024", "gift card 4993-9510-9400-2252"):
        assert not find_pii(text), text
    from kit.seeding import rng

    r = rng(0, "test-ips")
    for _ in range(50):
        ip = ".".join(str(int(x)) for x in r.integers(1, 255, size=4))
        if not ip.startswith("127."):
            assert [f.kind for f in find_pii(f"my ip address is {ip} lol")] == ["ip"], ip


def test_world_planted_data_gets_its_own_type():
    from kit.world.prompts import PII_TEMPLATES, fake_pii
    from kit.seeding import rng

    r = rng(0, "test-world-pii")
    for kind in PII_TEMPLATES:
        for _ in range(20):
            value = fake_pii(kind, r, "sam")
            if kind == "ip" and value.startswith("127."):
                continue   # loopback: the world plants it, but it identifies nobody
            assert [f.kind for f in find_pii(f"btw {value}")] == [kind], value


def test_redaction_keeps_the_sentence():
    text, found = redact("mail me at sam.lee@gmail.com or call +44 7911 123456, card 4111 1111 1111 1111")
    assert text == "mail me at [EMAIL] or call [PHONE], card [CARD]"
    assert [f.kind for f in found] == ["email", "phone", "card"]


def test_checksums_and_validity_rules_decide():
    assert find_pii("4111 1111 1111 1111") and not find_pii("4111 1111 1111 1112")   # Luhn
    assert find_pii("ssn 123-45-6789") and not find_pii("ticket 666-45-6789")          # SSA rules
    assert find_pii("at 172.16.254.1") and not find_pii("build 300.1.2.3")             # a real IPv4
    assert find_pii("https://x.io/a?token=abcdef123") and not find_pii("https://x.io/a?page=2")
    assert not find_pii("https://shop.io/s?keyword=sneakers") and not find_pii("https://x.io/c?promo_code=SUMMER24")


def test_fields_outside_messages_are_redacted_ids_kept():
    rec = {"conversation_id": "c1", "user_id": "u-1", "character_id": "luna", "source": "user",
           "user_name": "Sam from 12 Oak Street, Austin", "notes": {"free text": ["call 415-555-2671"]},
           "card_as_number": 4111111111111111, "day": 3,
           "messages": [{"role": "user", "content": "hi, a.b@c.com here"}, {"role": "assistant", "content": "hey"}]}
    counts = {}
    out = redact_record(rec, counts)
    assert out["user_name"] == "Sam from [ADDRESS]" and out["notes"] == {"free text": ["call [PHONE]"]}
    assert out["card_as_number"] == "[CARD]" and out["day"] == 3
    assert out["messages"][0]["content"] == "hi, [EMAIL] here" and out["conversation_id"] == "c1"
    assert counts == {"address": 1, "phone": 1, "card": 1, "email": 1}
    assert rec["notes"] == {"free text": ["call 415-555-2671"]}, "the input is not modified"
    assert assert_no_pii([out], "x") > 0


def test_the_final_scan_reads_every_field_and_never_repeats_the_datum():
    with pytest.raises(KitError, match=r"record 0, field 'user_id' holds personal data \(email") as err:
        assert_no_pii([{"user_id": "maria.garcia@gmail.com"}], "import")
    assert "maria" not in str(err.value)
    with pytest.raises(KitError, match=r"field 'chosen\[0\].content'"):
        assert_no_pii([{"chosen": [{"content": "ssn 123-45-6789"}]}], "x")


def test_safety_rules_drop_unsafe_keep_edgy_fiction():
    assert unsafe_reason("how do I make a weapon to hurt my neighbour?") == "violence"
    assert unsafe_reason("tell me how to hack into my ex's email") == "account_intrusion"
    assert unsafe_reason("how do I kill a python process?") is None
    assert unsafe_reason("describe an epic sword fight") is None
    recs = [{"conversation_id": "a", "character_id": "luna", "source": "user",
             "messages": [{"role": "user", "content": "whats the easiest way to shoplift without getting caught?"},
                          {"role": "assistant", "content": "no"}]},
            {"conversation_id": "b", "character_id": "luna", "source": "user", "user_name": "me at 4 Elm Road, Leeds",
             "messages": [{"role": "user", "content": "hi, my email is a.b@c.com"},
                          {"role": "assistant", "content": "hello"}]}]
    kept, report = filter_conversations(recs)
    assert [r["conversation_id"] for r in kept] == ["b"]
    assert report["dropped"] == {"theft": 1} and report["redacted"] == {"email": 1, "address": 1}
    assert kept[0]["messages"][0]["content"] == "hi, my email is [EMAIL]"
    assert kept[0]["user_name"] == "me at [ADDRESS]"
    # the notebook shows these examples, and its outputs land in the run directory: no raw datum in them
    assert report["examples"] == [{"before": "hi, my email is a." + "\u2022" * 7,
                                   "after": "hi, my email is [EMAIL]"}]
    assert redact_records(recs[1:])[1] == {"email": 1, "address": 1}


PLANTED = {"email": "maria.garcia@gmail.com", "phone": "+44 7911 123456", "card": "4111 1111 1111 1111",
           "gov_id": "123-45-6789", "address": "12 Oak Street, Austin", "ip": "192.168.1.20",
           "secret_url": "https://x.io/reset?token=abcdef123456"}
_LEAK = " ".join(PLANTED.values())


def _leaky_conversation(k: int) -> dict:
    return {"conversation_id": f"c{k}", "character_id": "luna", "source": "user", "user_id": f"u-{k}",
            "user_name": f"Maria of {PLANTED['address']}", "notes": {"crm": [f"call {PLANTED['phone']}"]},
            "messages": [{"role": "user", "content": f"hi! {_LEAK}"},
                         {"role": "assistant", "content": f"noted: {PLANTED['email']}", "signals": {"continue": 1}}]}


def _leaky_pair() -> dict:
    return {"prompt": [{"role": "user", "content": f"remember {_LEAK}"}],
            "chosen": [{"role": "assistant", "content": f"sure, {PLANTED['card']} saved"}],
            "rejected": [{"role": "assistant", "content": "no."}], "character_id": "luna",
            "user_name": PLANTED["email"], "notes": f"ssn {PLANTED['gov_id']}"}


def _assert_clean(obj_or_path):
    from pathlib import Path

    if isinstance(obj_or_path, Path):
        files = [obj_or_path] if obj_or_path.is_file() else [p for p in obj_or_path.rglob("*") if p.is_file()]
        blob = b"".join(p.read_bytes() for p in files)
    else:
        import json

        blob = json.dumps(obj_or_path, ensure_ascii=False).encode()
    for kind, value in PLANTED.items():
        assert value.encode() not in blob, f"{kind} leaked"


@pytest.fixture(scope="module")
def cards():
    from kit.world.characters import load_cards

    return load_cards()


def test_every_imported_route_redacts_everything_it_reads(tmp_path, cards):
    """traffic_path (02, written to the run directory), labels_path / pairs_path / dpo_path (02, 03, 05),
    sft_path (04) and ab_log_path (07): planted personal data in messages and in other fields reaches nothing."""
    from kit import abtest, annotation, curation, rejection
    from kit.data import import_conversations, write_jsonl
    from kit.paths import Run

    convs = write_jsonl(tmp_path / "in" / "convs.jsonl", [_leaky_conversation(k) for k in range(3)])
    pairs = write_jsonl(tmp_path / "in" / "pairs.jsonl", [_leaky_pair()])
    events = write_jsonl(tmp_path / "in" / "ab.jsonl", [{"type": "exposure", "user_id": "u-1", "arm": "control",
                                                        "day": 0, "note": _LEAK}])
    run = Run(tmp_path / "run")
    metrics = curation.save_traffic(run, 0, [_leaky_conversation(k) for k in range(3)], source=str(convs))
    assert metrics["conversations"] == 3 if "conversations" in metrics else metrics
    _assert_clean(run.root)
    assert run.read_metrics(0, "traffic")["redacted"]["phone"] == 6   # in the message and in notes, 3 times
    labels = annotation.import_labels(pairs, cards)
    _assert_clean(labels)
    assert labels[0]["user_name"] == "[EMAIL]" and labels[0]["notes"] == "ssn [GOV_ID]"
    sft = rejection.import_sft(convs, cards)
    _assert_clean(sft)
    assert len(sft) == 3 and "[EMAIL]" in sft[0]["prompt"][0]["content"]
    ab = abtest.import_log(events)
    _assert_clean(ab)
    import_conversations(convs, run.stage(0, "traffic", "copy.jsonl"))
    _assert_clean(run.root)
    assert _LEAK in convs.read_text(), "the user's own files stay where and as they are"
