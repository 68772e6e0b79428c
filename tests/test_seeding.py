"""One seed drives everything: named streams, and the one seeded sampler every stage uses."""
from kit import seeding


def test_streams_are_named_and_reproducible():
    assert seeding.rng(0, "a").random() == seeding.rng(0, "a").random()
    assert seeding.rng(0, "a").random() != seeding.rng(0, "b").random()
    assert seeding.derive(0, "x") == seeding.derive(0, "x") < 2**31
    assert seeding.stable_hash("hello") == seeding.stable_hash("hello") != seeding.stable_hash("hello!")


def test_sample_in_order_is_seeded_ordered_and_capped():
    """What rejection sampling's prompts, the reward models' training pairs, the held-out prompts, the DPO pairs
    and random RL prompts are drawn with."""
    items = [{"i": i} for i in range(50)]
    a = seeding.sample_in_order(items, 10, 0, "pick-prompts", "rs")
    assert a == seeding.sample_in_order(items, 10, 0, "pick-prompts", "rs")
    assert [x["i"] for x in a] == sorted(x["i"] for x in a) and len(a) == 10
    assert seeding.sample_in_order(items, 10, 1, "pick-prompts", "rs") != a, "another seed, another sample"
    assert seeding.sample_in_order(items, 10, 0, "cap", "rs") != a, "another stream, another sample"
    assert seeding.sample_in_order(items, 99, 0, "x") == items
    assert seeding.sample_in_order(items, 0, 0, "x") == []
