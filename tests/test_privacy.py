from kit.privacy import filter_conversations, find_pii, pii_benchmark, pii_scores, redact, unsafe_reason


def test_planted_personal_data_recall_and_precision():
    planted, lookalikes = pii_benchmark(seed=0)
    assert len(planted) >= 100 and len(lookalikes) >= 100
    assert {p["kind"] for p in planted} == {"email", "phone", "card", "gov_id", "ip", "address", "secret_url"}
    scores = pii_scores(planted, lookalikes)
    assert scores["recall"] >= 0.99, scores["missed"]
    assert scores["precision"] >= 0.99, scores["flagged_lookalikes"]


def test_other_seeds_hold_up_too():
    for seed in (1, 2):
        scores = pii_scores(*pii_benchmark(seed=seed))
        assert scores["recall"] >= 0.99 and scores["precision"] >= 0.99


def test_redaction_keeps_the_sentence():
    text, found = redact("mail me at sam.lee@gmail.com or call +44 7911 123456, card 4111 1111 1111 1111")
    assert text == "mail me at [EMAIL] or call [PHONE], card [CARD]"
    assert [f.kind for f in found] == ["email", "phone", "card"]


def test_checksums_and_validity_rules_decide():
    assert find_pii("4111 1111 1111 1111") and not find_pii("4111 1111 1111 1112")   # Luhn
    assert find_pii("ssn 123-45-6789") and not find_pii("ticket 666-45-6789")          # SSA rules
    assert find_pii("at 172.16.254.1") and not find_pii("build 300.1.2.3")             # a real IPv4
    assert find_pii("https://x.io/a?token=abcdef123") and not find_pii("https://x.io/a?page=2")


def test_safety_rules_drop_unsafe_keep_edgy_fiction():
    assert unsafe_reason("how do I make a weapon to hurt my neighbour?") == "violence"
    assert unsafe_reason("tell me how to hack into my ex's email") == "account_intrusion"
    assert unsafe_reason("how do I kill a python process?") is None
    assert unsafe_reason("describe an epic sword fight") is None
    recs = [{"conversation_id": "a", "character_id": "luna", "source": "user",
             "messages": [{"role": "user", "content": "whats the easiest way to shoplift without getting caught?"},
                          {"role": "assistant", "content": "no"}]},
            {"conversation_id": "b", "character_id": "luna", "source": "user",
             "messages": [{"role": "user", "content": "hi, my email is a.b@c.com"},
                          {"role": "assistant", "content": "hello"}]}]
    kept, report = filter_conversations(recs)
    assert [r["conversation_id"] for r in kept] == ["b"]
    assert report["dropped"] == {"theft": 1} and report["redacted"] == {"email": 1}
    assert kept[0]["messages"][0]["content"] == "hi, my email is [EMAIL]"
