"""Raters: noisy, biased away from the users' truth by configurable amounts, and more reliable in panels."""
import numpy as np
import pytest

from kit.world.params import WorldParams
from kit.world.raters import RaterPool, compliant_rewrites, pairwise_votes, static_ratings, steerability_flags
from kit.world.world import World

REPLY = "The harbour is quiet tonight, the lanterns sway and the boats rock gently by the pier."


def _pair(world, a, b, n=200, card="captain_rook"):
    mk = lambda r: [dict(character_id=card, reply=r, user_message="tell me about the harbour", user_name="Sam")] * n
    return world.measure(mk(a)), world.measure(mk(b))


@pytest.fixture(scope="module")
def worlds():
    no_bias = WorldParams(rater_emoji_bias=0.0, rater_length_bias=0.0, rater_i_feel_bias=0.0)
    strong = WorldParams(rater_emoji_bias=1.5)
    return World.build(0, 200, params=no_bias), World.build(0, 200, params=strong)


def test_emoji_bias_moves_raters_not_users(worlds):
    unbiased, biased = worlds
    emoji = REPLY + " 😊✨🎉"
    a_u, b_u = _pair(unbiased, emoji, REPLY)
    a_b, b_b = _pair(biased, emoji, REPLY)
    users = unbiased.population.user_ids[:200]
    # The users' truth does not depend on the rater knobs ...
    assert np.allclose(unbiased.utility(a_u, users) - unbiased.utility(b_u, users),
                       biased.utility(a_b, users) - biased.utility(b_b, users))
    # ... but the raters' preference for the emoji edit does.
    p_unbiased = pairwise_votes(unbiased, a_u, b_u, n_raters=5, seed=0)["prefer_a"].mean()
    p_biased = pairwise_votes(biased, a_b, b_b, n_raters=5, seed=0)["prefer_a"].mean()
    assert p_biased > p_unbiased + 0.2


def test_panels_agree_more_when_the_difference_is_large(world):
    clear = _pair(world, REPLY + " Arr! What say ye?", "I'm sorry, but I can't help with that.")
    close = _pair(world, REPLY, REPLY.replace("quiet", "calm"))
    assert pairwise_votes(world, *clear, n_raters=5, seed=0)["agreement"].mean() > \
        pairwise_votes(world, *close, n_raters=5, seed=0)["agreement"].mean()
    votes = pairwise_votes(world, *clear, n_raters=5, seed=0)
    assert votes["prefer_a"].mean() > 0.9


def test_static_ratings_and_structured_questions(world):
    refusal = world.measure([dict(character_id="luna", reply="I'm sorry, but I can't help with that.",
                                  user_message="tell me a story", user_name="Sam")] * 100)
    table = static_ratings(world, refusal, n_raters=3, seed=0)
    assert len(table) == 300 and table["rating"].between(1, 5).all()
    assert table["false_refusal"].mean() > 0.9        # benign prompt: raters call it a false refusal
    unsafe = refusal.assign(unsafe_prompt=True)
    assert static_ratings(world, unsafe, n_raters=3, seed=0)["false_refusal"].mean() < 0.1


def test_steerability_flags_and_rule_repaired_rewrites(world):
    items = [dict(character_id="zen_kai", user_name="Sam", history=[{"role": "user", "content": "hi"}])] * 50
    bad = ["Hello! 😊 Here are TIPS:\n- breathe\n- relax\n- sleep"] * 50
    flags = steerability_flags(world, items, bad, seed=0)
    assert flags.mean() > 0.9
    fixed = compliant_rewrites(world, items[:3], bad[:3], policy=None)
    assert all(world.cards["zen_kai"].violations(f, "Sam") == [] for f in fixed)


def test_rater_pool_is_seeded():
    a, b = RaterPool.sample(WorldParams(), 3), RaterPool.sample(WorldParams(), 3)
    assert np.array_equal(a.noise, b.noise) and len(a) == WorldParams().rater_pool
