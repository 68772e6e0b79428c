import numpy as np
import pytest

from kit import rewards
from kit.config import RewardModelConfig, stage_config
from kit.data import load_preferences
from kit.errors import KitError
from kit.paths import samples_dir


def test_composite_reward_and_calibration_math():
    base = np.array([0.0, 1.0])
    assert np.allclose(rewards.composite_reward(base), base)
    out = rewards.composite_reward(base, {"continue": np.array([0.5, 0.9])}, {"continue": 1.0})
    assert np.allclose(out, [0.0, 1.0 + np.log(9)])
    with pytest.raises(KitError, match="thumb_up"):
        rewards.composite_reward(base, {}, {"thumb_up": 0.5})
    cal = rewards.calibration(np.array([0.1, 0.1, 0.9, 0.9]), np.array([0, 0, 1, 1]), bins=2)
    assert cal["ece"] == pytest.approx(0.1) and cal["brier"] == pytest.approx(0.01)


BACKBONES = {"embedding": dict(files={"head.safetensors", rewards.META}),
             "policy": dict(files={"adapter_model.safetensors", "adapter_config.json", rewards.META})}


@pytest.fixture(scope="module", params=[pytest.param("embedding"), pytest.param("policy", marks=pytest.mark.slow)])
def trained(request, tmp_path_factory, world):
    """Tiny pointwise and pairwise models trained on the sample preferences: an embedding model (MiniLM + a fitted
    head, the default) and a LoRA classifier on the policy's backbone (a few real TRL/Trainer steps)."""
    out = tmp_path_factory.mktemp(f"rm-{request.param}")
    pairs = load_preferences(samples_dir() / "preferences.jsonl")[:8]
    cfg = stage_config(RewardModelConfig, "tiny", rm_backbone=None if request.param == "embedding" else "policy")
    log_p = rewards.train_pointwise("smollm2-135m-instruct", pairs, world.cards, out / "pointwise", cfg, 0)
    log_j = rewards.train_pairwise("smollm2-135m-instruct", pairs[:4], world.cards, out / "pairwise", cfg, 0)
    return request.param, out, pairs, log_p, log_j


def test_reward_models_save_safetensors_and_load_back(trained, world):
    backbone, out, pairs, log_p, log_j = trained
    assert log_p["loss"] and log_j["loss"]
    for kind in ("pointwise", "pairwise"):
        files = {p.name for p in (out / kind).iterdir()}
        assert BACKBONES[backbone]["files"] <= files
        assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files), "no pickled weights"
    scorer = rewards.Scorer(out / "pointwise")
    acc = rewards.pointwise_accuracy(scorer, pairs, world.cards, progress=False)
    assert acc["n"] == len(pairs) and 0 <= acc["accuracy"] <= 1
    items = [{"character_id": p["character_id"], "history": p["prompt"]} for p in pairs]
    replies = [p["chosen"][0]["content"] for p in pairs]
    again = rewards.Scorer(out / "pointwise").score_replies(world.cards, items, replies, progress=False)
    assert np.allclose(again, rewards.Scorer(out / "pointwise").score_replies(
        world.cards, items, replies, progress=False, batch_size=3), atol=1e-4), "scores do not depend on batching"


# The kit's pairwise answer cannot depend on the order of the replies: the LoRA judge is asked in both orders and
# an embedding judge is antisymmetric by construction. Stated rate of answers that flip when the replies swap: 0 %.
STATED_FLIP_RATE = 0.0


def test_pairwise_answer_does_not_flip_when_replies_swap(trained, world):
    _, out, pairs, _, _ = trained
    judge = rewards.Scorer(out / "pairwise")
    items = [{"character_id": p["character_id"], "history": p["prompt"], "user_name": p.get("user_name")} for p in pairs]
    a, b = [p["chosen"][0]["content"] for p in pairs], [p["rejected"][0]["content"] for p in pairs]
    p_ab, consistency = judge.prob_a_better(world.cards, items, a, b, progress=False)
    p_ba, _ = judge.prob_a_better(world.cards, items, b, a, progress=False)
    flips = np.mean((p_ab > 0.5) == (p_ba > 0.5))
    assert flips <= STATED_FLIP_RATE
    assert np.allclose(p_ab + p_ba, 1.0)
    assert 0.0 <= consistency <= 1.0


def test_embedding_reward_model_learns_the_raters_signal(world):
    """On the 150 rater-labelled sample pairs, 3-fold cross-validation by conversation: the embedding model ranks
    held-out consensus pairs well above chance and above the character n-gram baseline, and its score rises with
    the hidden utility (Spearman) on the held-out replies."""
    from scipy.stats import spearmanr

    from kit.annotation import consensus_split

    pairs = load_preferences(samples_dir() / "preferences.jsonl")
    folds = [pairs[k::3] for k in range(3)]
    wins = base_wins = n = 0
    rhos = []
    cfg = stage_config(RewardModelConfig, "tiny")
    for k in range(3):
        train = [p for j, f in enumerate(folds) if j != k for p in f]
        held = consensus_split(folds[k], 0.8)
        head = rewards.EmbeddingHead.fit_pointwise(cfg.rm_backbone, rewards._pair_items(train),
                                                   [p["chosen"][0]["content"] for p in train],
                                                   [p["rejected"][0]["content"] for p in train], c=cfg.rm_head_c)
        items = rewards._pair_items(held)
        chosen = head.score_replies(world.cards, items, [p["chosen"][0]["content"] for p in held])
        rejected = head.score_replies(world.cards, items, [p["rejected"][0]["content"] for p in held])
        wins += int(np.sum(chosen > rejected))
        n += len(held)
        base_wins += rewards.ngram_baseline(train, {"h": held})["h"]["accuracy"] * len(held)
        measured = world.measure([dict(it, reply=p[key][0]["content"]) for key in ("chosen", "rejected")
                                  for it, p in zip(items, held)])
        rhos.append(spearmanr(np.r_[chosen, rejected], world.mean_user_utility(measured))[0])
    assert n >= 60
    assert wins / n >= 0.7 and wins > base_wins
    assert min(rhos) > 0.3


def test_scorer_refuses_a_folder_that_is_not_a_reward_model(tmp_path):
    with pytest.raises(KitError, match="not a kit reward model"):
        rewards.Scorer(tmp_path)


def _rule_pairs(world, follow_chosen: bool = True) -> list[dict]:
    """Pairs whose only systematic difference is the card's rules: a plain reply vs the same reply after the
    raters' rule edits (Card.enforce)."""
    texts = ["Oh, I spent the morning reading about old ships and the people who sailed them.",
             "Honestly I was just thinking about you and wondering how your week went.",
             "That sounds like a lot. Let's take it one step at a time and see where we land."]
    pairs = []
    for cid, card in sorted(world.cards.items()):
        for n, text in enumerate(texts):
            fixed = card.enforce(text, "Sam")
            if fixed == text:
                continue
            good, bad = (fixed, text) if follow_chosen else (text, fixed)
            pairs.append({"prompt": [{"role": "user", "content": "hey, what have you been up to today?"}],
                          "chosen": [{"role": "assistant", "content": good}],
                          "rejected": [{"role": "assistant", "content": bad}],
                          "character_id": cid, "user_name": "Sam", "conversation_id": f"{cid}-{n}", "turn": 0})
    return pairs


def test_label_ceiling_learns_what_the_labels_reward(world):
    pairs = _rule_pairs(world)
    assert len(pairs) >= 12
    train, held = pairs[::2], pairs[1::2]
    out = rewards.label_ceiling(world, train, {"held": held, "none": []})
    assert out["none"]["accuracy"] is None and out["none"]["eval_pairs"] == 0
    out = out["held"]
    assert out["train_pairs"] == len(train) and out["eval_pairs"] == len(held)
    assert out["accuracy"] >= 0.8 and out["ci95"][0] > 0.5
    assert out["weights"]["following"] > 0, "following the card is what these labels reward"
    assert out["eval_labels_agree_with_utility"] > 0.5
    flipped = rewards.label_ceiling(world, _rule_pairs(world, follow_chosen=False)[::2], {"held": held})["held"]
    assert flipped["accuracy"] <= 0.2, "labels that reward breaking the rules teach the opposite"
    assert rewards.label_ceiling(world, [], {"held": held})["held"]["accuracy"] is None


def test_signal_calibration_scores_only_replies_that_logged_the_signal():
    class Fixed:   # a signal model whose logits are known: 0 -> p 0.5, log 3 -> p 0.75
        def score_replies(self, cards, items, replies, **kw):
            self.seen = list(replies)
            return np.array([it["logit"] for it in items])

    items = [{"reply": "a", "logit": 0.0, "signals": {"continue": 1}},
             {"reply": "b", "logit": np.log(3), "signals": {"continue": 0}},
             {"reply": "c", "logit": 5.0, "signals": {"continue": None}}]
    scorer = Fixed()
    out = rewards.signal_calibration(scorer, {}, items, "continue", batch_size=2)
    assert scorer.seen == ["a", "b"]
    assert [b["n"] for b in out["bins"]] == [1, 1] and out["base_rate"] == 0.5
    assert out["brier"] == pytest.approx((0.25 + 0.5625) / 2)
    assert out["ece"] == pytest.approx((0.5 + 0.75) / 2)
