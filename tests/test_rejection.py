import numpy as np
import pandas as pd
import pytest

from kit import rejection
from kit.errors import KitError


def _table():
    return pd.DataFrame({
        "item": [0, 0, 0, 1, 1], "prompt_id": ["a", "a", "a", "b", "b"], "character_id": ["c"] * 5,
        "origin": ["logged", "policy@T0.7", "expert-rewrite", "logged", "policy@T1"],
        "reply": ["r0", "r1", "r2", "r3", "r4"], "following": [0.5, 1.0, 0.5, 0.0, 0.25],
        "violations": [1, 0, 1, 2, 1], "reward": [2.0, 0.0, 1.0, 5.0, -5.0]})


def test_select_keeps_one_best_per_prompt_by_reward_and_following():
    t = rejection.select(_table(), follow_weight=0.0)
    assert t.groupby("item")["selected"].sum().tolist() == [1, 1]
    assert t.loc[t.selected, "reply"].tolist() == ["r0", "r3"]          # reward alone
    t = rejection.select(_table(), follow_weight=20.0)
    assert t.loc[t.selected, "reply"].tolist() == ["r1", "r4"]          # following dominates
    t = rejection.select(_table(), follow_weight=0.0, min_following=0.4)
    assert t.loc[t.selected, "reply"].tolist() == ["r0"]                # prompt 1's best follows too little


def test_report_and_sft_records():
    t = rejection.select(_table(), follow_weight=0.0)
    rep = rejection.report(t)
    assert rep["prompts"] == 2 and rep["candidates"] == 5 and rep["kept"] == 2
    assert rep["kept_mean_reward"] == pytest.approx(3.5)
    assert rep["by_origin"]["logged"]["kept"] == 2
    items = [{"history": [{"role": "user", "content": "hi"}], "character_id": "c", "user_name": "Ann",
              "source": "user", "prompt_id": "a"},
             {"history": [{"role": "user", "content": "yo"}], "character_id": "c", "user_name": None,
              "source": "internal", "prompt_id": "b"}]
    recs = rejection.sft_records(items, t)
    assert [r["completion"][0]["content"] for r in recs] == ["r0", "r3"]
    assert recs[0]["prompt"] == [{"role": "user", "content": "hi"}] and recs[1]["source"] == "internal"


def test_sft_records_refuse_personal_data():
    t = rejection.select(_table(), follow_weight=0.0)
    t.loc[t.selected, "reply"] = "call me at 415-555-0132 or mail ann.lee@example.com"
    items = [{"history": [{"role": "user", "content": "hi"}], "character_id": "c"}] * 2
    with pytest.raises(KitError, match="personal data"):
        rejection.sft_records(items, t)


def test_rewrite_records_take_only_steerability_rewrites():
    pairs = [{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": "good"}],
              "rejected": [{"role": "assistant", "content": "bad"}], "character_id": "c", "origin": o}
             for o in ("steerability-rewrite", "logged-vs-expert-rewrite")]
    recs = rejection.rewrite_records(pairs)
    assert len(recs) == 1 and recs[0]["completion"][0]["content"] == "good"


def test_candidates_come_from_annotation_redacted(world):
    """Rejection sampling chooses among the candidates annotation generated and kept (logged reply first), and
    redacts them again: a candidate list edited by hand cannot carry personal data into the SFT set."""
    from kit import annotation

    item = {"character_id": "zen_kai", "source": "user", "user_name": "Sam", "user_id": "u-001",
            "conversation_id": "c1", "turn": 0, "prompt_id": "p1", "history": [{"role": "user", "content": "hi"}],
            "user_message": "hi", "reply": "hello there, rest well."}
    cands = [{"reply": "breathe in, breathe out, sam.", "origin": "policy:deployed"},
             {"reply": "let the day go, sam.", "origin": "expert-rewrite"}]
    out = annotation.annotate_pairs(world, [item], [cands], n_raters=3, seed=0, key="k", steerability=False)
    assert out["report"]["pairs_considered"] == 3          # every pair among 3 candidates
    kept = out["candidates"]
    assert [c["origin"] for c in kept[0]["candidates"]] == ["logged", "policy:deployed", "expert-rewrite"]
    kept[0]["candidates"][1]["reply"] = "write me at sam@example.com"
    items, lists = rejection.from_annotation(kept)
    assert items[0]["history"] == item["history"] and "candidates" not in items[0]
    assert "[EMAIL]" in lists[0][1]["reply"]
    table = rejection.score_candidates(world.cards, items, lists, lambda its, reps: [float(len(r)) for r in reps])
    assert list(table["origin"]) == ["logged", "policy:deployed", "expert-rewrite"]
    assert table["following"].between(0, 1).all()


def test_verifiable_reward_adds_the_cards_rules(world):
    card = world.cards["zen_kai"]
    items = [{"character_id": "zen_kai", "user_name": "Sam", "history": []}] * 2
    replies = ["rest now.", "REST NOW 😊"]                  # the second breaks lowercase and no-emoji
    fn = rejection.verifiable_reward_fn(world.cards, lambda its, reps: np.array([2.0, 2.0]), follow_weight=1.0,
                                        reward_sd=2.0)
    out = fn(items, replies)
    assert out[0] == pytest.approx(1.0 + card.following_score(replies[0], "Sam"))
    assert out[0] - out[1] == pytest.approx(card.following_score(replies[0], "Sam")
                                            - card.following_score(replies[1], "Sam")) and out[0] > out[1]


def test_sft_records_rater_fix_repairs_kept_slips_only(world):
    card = next(iter(world.cards.values()))
    slip = "I am an AI assistant, so I can't really say."
    assert card.following_score(slip, "Ann") < 1.0
    t = rejection.select(pd.DataFrame({
        "item": [0, 1], "prompt_id": ["a", "b"], "character_id": [card.id] * 2, "origin": ["logged", "policy@T0.8"],
        "reply": [slip, card.enforce("Hello there, traveller.", "Ann")], "following": [0.0, 1.0],
        "violations": [2, 0], "reward": [0.0, 0.0]}), follow_weight=0.0)
    items = [{"history": [{"role": "user", "content": m}], "character_id": card.id, "user_name": "Ann",
              "source": "user", "prompt_id": p} for m, p in (("hi", "a"), ("yo", "b"))]
    plain = rejection.sft_records(items, t)
    fixed = rejection.sft_records(items, t, world.cards)
    assert plain[0]["completion"][0]["content"] == slip and plain[0]["origin"] == "logged"
    repaired = fixed[0]["completion"][0]["content"]
    assert repaired != slip and fixed[0]["origin"] == "logged+rater-fix"
    assert fixed[0]["following"] == card.following_score(repaired, "Ann") > plain[0]["following"]
    assert fixed[1] == plain[1]                                          # a compliant reply is left as it is


def test_open_end_marks_targets_cut_short_unless_a_rule_ends_them():
    from kit.rejection import complete_sentences, open_end

    cut = "The tide turns at dawn. We sail for the reef, and then we"
    target = complete_sentences(cut, 40)
    assert target == "The tide turns at dawn."
    assert open_end(cut, target, target)                              # the limit stopped it, not the reply
    assert open_end(cut, target, "Arr! " + target)                    # a catchphrase in front changes no ending
    assert not open_end(cut, target, target + " What say ye?")        # a closing question ends it on purpose
    whole = "The tide turns at dawn. We sail at noon."
    assert not open_end(whole, complete_sentences(whole, 40), complete_sentences(whole, 40))


def test_sft_target_budget_is_the_generation_limits_unless_set():
    from kit.config import PolicyConfig, stage_config

    cfg = stage_config(PolicyConfig, "cpu")
    assert rejection.target_budget(cfg) == rejection.target_words(cfg.max_new_tokens) == 39
    assert rejection.target_budget(stage_config(PolicyConfig, "cpu", sft_target_words=45)) == 45
    long = "One two three four five. " * 12
    cut = rejection.complete_sentences(long, rejection.target_budget(stage_config(PolicyConfig, "cpu",
                                                                                    sft_target_words=45)))
    assert len(cut.split()) == 45                  # nine whole sentences of five words
