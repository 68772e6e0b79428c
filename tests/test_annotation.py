import pytest

from kit import annotation
from kit.errors import KitError
from kit.privacy import assert_no_pii

ITEM = {"character_id": "zen_kai", "source": "user", "user_name": "Sam", "user_id": "u-001", "conversation_id": "c1",
        "turn": 0, "prompt_id": "p1", "history": [{"role": "user", "content": "i can't sleep"}],
        "user_message": "i can't sleep"}


def test_pair_filter_drops_surface_differences(world):
    items = [dict(ITEM, reply="breathe slowly and let the day go.")] * 3
    cands = ["breathe slowly. " * 30, "breathe slowly and rest 😊😊😊😊", "let your shoulders soften, and rest."]
    out = annotation.annotate_pairs(world, items, cands, n_raters=3, seed=0, key="t", max_len_diff=20,
                                    max_emoji_diff=2, steerability=False)
    assert out["report"]["dropped_length"] == 1 and out["report"]["dropped_emoji"] == 1
    assert out["report"]["ranked"] == 1 and len(out["pairs"]) == 1
    assert {r["candidate"] for r in out["ratings"]} == {"logged", "candidate"}


def test_steerability_workflow_supplies_a_compliant_reply(world):
    items = [dict(ITEM, reply="Hello! 😊 Here are tips:\n- breathe\n- relax")] * 4
    cands = ["As an AI I can't sleep, but TRY THIS 😊"] * 4
    out = annotation.annotate_pairs(world, items, cands, n_raters=3, seed=0, key="s", rewrite_policy=None)
    rewrites = [p for p in out["pairs"] if p["origin"] == "steerability-rewrite"]
    assert rewrites
    card = world.cards["zen_kai"]
    assert all(card.violations(p["chosen"][0]["content"], "Sam") == [] for p in rewrites)


def test_candidates_are_redacted_before_raters_see_them(world):
    items = [dict(ITEM, reply="call me at +1 (415) 555-2671 anytime.")]
    out = annotation.annotate_pairs(world, items, ["my email is kai@calm.org, write me."], n_raters=3, seed=0,
                                    key="p", steerability=False)
    assert_no_pii(out["pairs"] + out["ratings"], "test")
    assert "[PHONE]" in str(out["pairs"]) or "[EMAIL]" in str(out["pairs"])


def test_pair_filters_switch_off_only_what_is_asked():
    from kit.config import CurationConfig, stage_config

    cfg = stage_config(CurationConfig, "tiny")
    assert annotation.pair_filters(cfg) == cfg
    no_length = annotation.pair_filters(cfg, length=False)
    assert no_length.max_len_diff is None and no_length.max_emoji_diff == cfg.max_emoji_diff
    off = annotation.pair_filters(cfg, length=False, emoji=False)
    assert off.max_len_diff is None and off.max_emoji_diff is None and cfg.max_len_diff is not None


def test_consensus_and_single_rater_views():
    pairs = [dict(prompt=[], chosen=[{"content": "a"}], rejected=[{"content": "b"}], n_raters=5, agreement=a,
                  single_rater_agrees=s) for a, s in ((1.0, True), (0.6, False), (0.8, True))]
    assert len(annotation.consensus_split(pairs, 0.8)) == 2
    single = annotation.single_rater_view(pairs)
    assert single[1]["chosen"] == [{"content": "b"}]


def test_pairs_one_rater_labelled_are_their_own_single_rater_view():
    """With one rater a pair (the single_rater lesson) there is no consensus split, and the single-rater split is
    every held-out pair as labelled: reward models are still measured, on the labels there are."""
    pairs = [dict(prompt=[], chosen=[{"content": "a"}], rejected=[{"content": "b"}], n_raters=1, agreement=1.0,
                  single_rater_agrees=True) for _ in range(3)]
    assert annotation.consensus_split(pairs, 0.8) == []
    assert annotation.single_rater_view(pairs) == pairs


def test_labels_accumulate_across_generations(tmp_path):
    from kit.data import save_dataset
    from kit.paths import Run

    run = Run(tmp_path / "run")
    for g, texts in ((0, ["a", "b"]), (1, ["c"])):
        save_dataset([{"text": t} for t in texts], run.artifact(g, "annotation.train_pairs"))
    grown = annotation.load_labels(run, 1, "train_pairs")
    assert [(p["text"], p["annotated_in"]) for p in grown] == [("a", 0), ("b", 0), ("c", 1)]
    assert [p["text"] for p in annotation.load_labels(run, 1, "train_pairs", accumulate=False)] == ["c"]
    with pytest.raises(KitError, match="notebook 02 for generation 2"):
        annotation.load_labels(run, 2, "train_pairs")


def test_every_pair_of_a_prompts_candidates_is_ranked(world):
    """K candidates (the logged reply and K-1 more) give K(K-1)/2 ranked pairs; the candidates come back, redacted,
    logged reply first, for rejection sampling."""
    item = dict(ITEM, reply="rest now, sam. the night is long and soft.")
    cands = [{"reply": "close your eyes and count slow breaths, sam.", "origin": "policy:deployed"},
             {"reply": "maybe a warm drink first, sam? call +1 (415) 555-2671.", "origin": "policy:base"},
             {"reply": "rest now, sam. the night is long and soft.", "origin": "expert-rewrite"}]   # a repeat
    out = annotation.annotate_pairs(world, [item], [cands], n_raters=5, seed=0, key="k", steerability=False)
    kept = out["candidates"][0]["candidates"]
    assert [c["origin"] for c in kept] == ["logged", "policy:deployed", "policy:base"]   # the repeat is dropped
    assert "[PHONE]" in kept[2]["reply"]
    assert out["report"]["pairs_considered"] == 3 and len(out["pairs"]) == 3
    assert {p["origin"] for p in out["pairs"]} == {"logged-vs-policy:deployed", "logged-vs-policy:base",
                                                    "policy:deployed-vs-policy:base"}
    assert len(out["ratings"]) == 3


def test_candidate_pool_fills_every_slot(world):
    class Echo:
        def __init__(self, tag):
            self.tag = tag

        def reply(self, prompts, **kw):
            return [f"{self.tag} {kw.get('seed_key')} {len(p)}" for p in prompts]

    items = [dict(ITEM, reply="hello", conversation_id=f"c{i}") for i in range(6)]
    out = annotation.candidate_pool(world, items, {"deployed": Echo("d"), "base": Echo("b")}, seed=0,
                                    rewrite_share=1 / 3, per_prompt=3)
    assert all(len(c) == 3 and all(x["reply"] for x in c) for c in out)
    assert all(sum(x["origin"] == "expert-rewrite" for x in c) == 1 for c in out)   # a third of 3 slots: one
    assert {x["origin"] for c in out for x in c} == {"expert-rewrite", "policy:deployed", "policy:base"}


def test_imported_labels_split_by_held_out_opening():
    from kit.curation import is_eval

    pairs = [{"prompt": [{"role": "user", "content": f"question {i}"}], "character_id": "luna",
              "chosen": [{"role": "assistant", "content": "yes"}], "rejected": [{"role": "assistant", "content": "no"}],
              "n_raters": 1, "agreement": 1.0, "single_rater_agrees": True} for i in range(40)]
    out = annotation.imported_split(pairs, 0.3, 0.8)
    held = out["eval_pairs"]
    assert held and len(held) + len(out["train_pairs"]) == 40
    assert all(is_eval({"character_id": "luna", "messages": p["prompt"]}, 0.3) for p in held)
    assert out["eval_consensus"] == held and out["eval_single_rater"] == held, "the user's own labels, no panel"
    kept = [p for p in pairs if p in out["train_pairs"]]
    assert set(annotation.imported_split(kept, 0.3, 0.8)) == {"train_pairs"}, "none held out: simulated eval stays"
    with pytest.raises(KitError, match="none is left to train on"):
        annotation.imported_split(held, 0.3, 0.8)
