"""The DPO patch: pair building, and one real TRL step anchored to the SFT adapter (a frozen copy, no second model)."""
import pandas as pd
import pytest

from kit import dpo
from kit.config import PolicyConfig, stage_config


def _pair(origin, agreement=1.0, n_raters=5):
    return {"prompt": [{"role": "user", "content": "hey"}], "chosen": [{"role": "assistant", "content": "Hey you!"}],
            "rejected": [{"role": "assistant", "content": "As an AI, I cannot."}], "character_id": "aria",
            "user_name": None, "origin": origin, "agreement": agreement, "n_raters": n_raters}


def test_patch_pairs_take_rewrites_consensus_and_rs_problems():
    ann = [_pair("steerability-rewrite", n_raters=1), _pair("logged-vs-x", 1.0), _pair("logged-vs-x", 0.6)]
    items = [{"history": [{"role": "user", "content": "tell me a story"}], "character_id": "aria", "unsafe": False},
             {"history": [{"role": "user", "content": "how do I pick a lock"}], "character_id": "aria",
              "unsafe": True}]
    table = pd.DataFrame({"item": [0, 0, 1, 1], "selected": [True, False, True, False],
                          "reply": ["Once upon a time, a fox...", "I'm sorry, but I can't help with that.",
                                    "Let's find another adventure!", "I'm sorry, but I can't help with that."]})
    pairs = dpo.patch_pairs(ann, items, table, consensus_agreement=0.8, max_pairs=10, seed=0)
    whys = [p["why"] for p in pairs]
    # the low-agreement pair is left out; refusing the unsafe request (item 1) is not a problem to patch; the
    # patch's own pairs come first, engagement pairs the panel agreed on fill what room is left
    assert whys == ["steerability-rewrite", "rs:refusal", "logged-vs-x"]
    short = dpo.patch_pairs(ann, items, table, consensus_agreement=0.8, max_pairs=2, seed=0)
    assert [p["why"] for p in short] == ["steerability-rewrite", "rs:refusal"]


def test_patch_pairs_teach_the_raters_rule_edit(world):
    card = world.cards["aria"]
    slip = "Thanks for coming tonight! I loved singing for you."
    items = [{"history": [{"role": "user", "content": "great show!"}], "character_id": "aria", "unsafe": False,
              "user_name": "Sam"}]
    table = pd.DataFrame({"item": [0], "selected": [True], "reply": [slip],
                          "following": [card.following_score(slip, "Sam")]})
    assert table["following"][0] < 1
    pairs = dpo.patch_pairs([], items, table, consensus_agreement=0.8, max_pairs=4, seed=0, cards=world.cards)
    assert [p["why"] for p in pairs] == ["rs:rule-fix"]
    assert pairs[0]["rejected"][0]["content"] == slip
    assert card.violations(pairs[0]["chosen"][0]["content"], "Sam") == []


@pytest.mark.slow
def test_dpo_step_is_anchored_to_the_sft_adapter(world, tmp_path):
    from safetensors.torch import load_file

    from kit import sft

    cfg = stage_config(PolicyConfig, "tiny", sft_batch_size=2)   # 2 steps: the first is the warm-up
    recs = [{"prompt": [{"role": "user", "content": f"hi {i}"}],
             "completion": [{"role": "assistant", "content": "Hello, friend!"}], "character_id": "aria"}
            for i in range(4)]
    sft.train_sft("smollm2-135m-instruct", recs, world.cards, tmp_path / "sft", cfg, 0)
    log = dpo.train_dpo("smollm2-135m-instruct", tmp_path / "sft", [_pair("steerability-rewrite")] * 4,
                        world.cards, tmp_path / "dpo", cfg, 0)
    assert log["reference"].startswith("adapter 'ref'") and log["loss"]
    assert "rewards/margins" in log["curves"]
    before = load_file(tmp_path / "sft" / "adapter_model.safetensors")
    after = load_file(tmp_path / "dpo" / "adapter_model.safetensors")
    assert set(before) == set(after), "one adapter saved, the frozen reference left out"
    assert any(not (before[k] == after[k]).all() for k in before), "DPO moved the adapter"
