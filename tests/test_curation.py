import numpy as np
import pytest

from kit import curation
from kit.errors import KitError
from kit.privacy import assert_no_pii
from kit.paths import samples_dir
from kit.data import load_conversations


@pytest.fixture(scope="module")
def sample_items(world):
    records = load_conversations(samples_dir() / "conversations.jsonl")
    return records, curation.prompt_items(records, world.cards)


def test_eval_split_is_stable_and_whole_conversations(sample_items):
    records, _ = sample_items
    train, held = curation.split_eval(records, 0.2)
    again_train, again_held = curation.split_eval(list(reversed(records)), 0.2)
    assert {r["conversation_id"] for r in held} == {r["conversation_id"] for r in again_held}
    assert 0.05 < len(held) / len(records) < 0.45
    openings = lambda rs: {curation.opening_key(r) for r in rs}  # noqa: E731
    assert not openings(train) & openings(held)


def test_disjointness_is_checked(world, sample_items):
    records, _ = sample_items
    train, held = curation.split_eval(records, 0.2)
    train_items, eval_items = curation.prompt_items(train, world.cards), curation.prompt_items(held, world.cards)
    assert curation.assert_disjoint(eval_items, train_items)["eval"] == len(eval_items)
    with pytest.raises(KitError, match="also in the evaluation set"):
        curation.assert_disjoint(eval_items, train_items + eval_items[:1], names=("sft",))


def test_diversity_prunes_near_duplicates(world):
    from kit.models import load_embedder

    base = {"character_id": "luna", "history": [{"role": "user", "content": "hi"}]}
    texts = ["hey luna how are you"] * 5 + ["tell me about the stars", "what music do you like", "i had a rough day"]
    items = [dict(base, history=[{"role": "user", "content": t}]) for t in texts]
    emb = curation.embed_prompts(items, load_embedder())
    kept, report = curation.diversity_prune(items, emb, threshold=0.95, keep_fraction=1.0, seed=0, n_clusters=2)
    assert report["near_duplicates"] == 4 and len(kept) == 4
    kept_half, _ = curation.diversity_prune(items, emb, threshold=0.95, keep_fraction=0.25, seed=0, n_clusters=2)
    assert len(kept_half) == 2


def test_stratified_sampling_matches_original_and_targets():
    r = np.random.default_rng(0)
    reference = [{"category": c, "source": s, "turn_depth": "1", "length_bucket": "short"}
                 for c, s in zip(r.choice(["a", "b"], 1000, p=[0.7, 0.3]), r.choice(["user", "internal"], 1000))]
    skewed = [x for x in reference if x["category"] == "b"] + [x for x in reference if x["category"] == "a"][:300]
    kept, _ = curation.stratified_sample(skewed, reference, n_out=300, seed=0)
    share_a = np.mean([skewed[i]["category"] == "a" for i in kept])
    assert abs(share_a - 0.7) < 0.03
    kept_t, _ = curation.stratified_sample(skewed, reference, n_out=200, seed=0,
                                           targets={"category": {"a": 0.5, "b": 0.5}})
    assert abs(np.mean([skewed[i]["category"] == "a" for i in kept_t]) - 0.5) < 0.03


def test_prompt_items_refuse_unknown_characters(world):
    rec = {"conversation_id": "x", "character_id": "gandalf", "source": "user",
           "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    with pytest.raises(KitError, match="gandalf"):
        curation.prompt_items([rec], world.cards)


def test_curated_and_annotated_data_hold_no_personal_data(world, sample_items):
    from kit import annotation
    from kit.config import CurationConfig, stage_config
    from kit.models import load_embedder

    records, _ = sample_items
    planted = sum(p is not None for r in records for p in r["hidden"]["pii"])
    assert planted >= 5, "the samples carry fake personal data for the filter to find"
    result = curation.curate(records, world.cards, load_embedder(), stage_config(CurationConfig, "cpu"), seed=0)
    assert sum(result["privacy"]["redacted"].values()) >= planted
    assert result["metrics"]["pii_check"]["found"] == 0 and result["metrics"]["pii_check"]["texts_scanned"] > 0
    assert result["metrics"]["prompts"]["eval"] > 0
    # a policy that leaks personal data into a candidate: redacted before any rater sees it
    items = result["train"][:8]
    leaky = [it["reply"] + " write me at kai.lee@gmail.com or +1 (415) 555-2671" for it in items]
    out = annotation.annotate_pairs(world, items, leaky, n_raters=3, seed=0, key="leak")
    assert out["pairs"]
    assert_no_pii(out["pairs"] + out["ratings"], "annotation")
