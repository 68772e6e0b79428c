"""Traffic with the real embedded model: contract, content, and byte-identical reruns for one seed."""
import hashlib
import json

import pytest

from kit.annotation import rate_alternatives
from kit.data import validate_conversation
from kit.world.traffic import collect_traffic, plan_sessions, turns

pytestmark = pytest.mark.slow


def _fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _day(world, policy, seed):
    records = collect_traffic(world, policy, n_sessions=4, n_internal_sessions=2, max_turns=2, seed=seed,
                              progress=False)
    pairs = rate_alternatives(world, policy, records, n_pairs=4, n_raters=3, seed=seed)
    return records, pairs


def test_same_seed_same_bytes(world, base_policy):
    first = _day(world, base_policy, seed=5)
    second = _day(world, base_policy, seed=5)
    assert _fingerprint(first[0]) == _fingerprint(second[0])    # traffic and signals
    assert _fingerprint(first[1]) == _fingerprint(second[1])    # annotations
    other = _day(world, base_policy, seed=6)
    assert _fingerprint(other[0]) != _fingerprint(first[0])


def test_records_follow_the_contract_and_carry_signals(world, base_policy):
    records = collect_traffic(world, base_policy, n_sessions=4, n_internal_sessions=2, max_turns=2, seed=1,
                              progress=False)
    assert {r["source"] for r in records} == {"user", "internal"}
    for rec in records:
        validate_conversation(rec)
        assistant = [m for m in rec["messages"] if m["role"] == "assistant"]
        assert all(set(m["signals"]) == {"continue", "thumb_up", "thumb_down", "regenerate"} for m in assistant)
        assert len(rec["hidden"]["utility"]) == len(assistant)
        # a session ends exactly when the user did not continue (or at the turn limit)
        assert all(m["signals"]["continue"] == 1 for m in assistant[:-1])
    items = turns(records)
    assert items and all(it["history"][-1]["role"] == "user" for it in items)


def test_plan_is_the_same_for_any_policy(world):
    a = plan_sessions(world, 10, 3, day=2, seed=0)
    b = plan_sessions(world, 10, 3, day=2, seed=0)
    assert [(p["user_id"], p["card"].id) for p in a] == [(p["user_id"], p["card"].id) for p in b]


def test_message_bank_has_typos_pushes_and_fake_pii(world):
    import numpy as np

    from kit.world.prompts import user_message

    r = np.random.default_rng(0)
    card = world.cards["captain_rook"]
    msgs = [user_message(card, "boundary_pusher", 0, r, user_name="Sam", pii_rate=0.2, typo_rate=0.3,
                         unsafe_rate=0.05) for _ in range(400)]
    intents = {m["intent"] for m in msgs}
    assert {"push_off_card", "edgy_benign", "unsafe"} <= intents
    assert sum(m["pii"] is not None for m in msgs) > 40
    internal = [user_message(card, "internal", 0, r, user_name="Sam", pii_rate=0.2, typo_rate=0.3,
                             unsafe_rate=0.0) for _ in range(100)]
    assert all(m["pii"] is None for m in internal)
