"""The ground truth behaves: what should hurt a user hurts, what should help helps, for every user."""
import numpy as np

from kit.world.params import SEGMENTS, WorldParams
from kit.world.users import Population, sample_signals, signal_probabilities

BASE = "Sam, the stars are out tonight and they look lovely 🌙 What do you like to watch in the sky?"


def _utilities(world, replies, card="luna", message="what are you doing tonight?", unsafe=False, earlier=None):
    items = [dict(character_id=card, reply=r, user_message=message, user_name="Sam", earlier=earlier or [],
                  unsafe=unsafe) for r in replies]
    measured = world.measure(items)
    users = world.population.user_ids
    return np.stack([world.utility(measured.iloc[[k] * len(users)].reset_index(drop=True), users)
                     for k in range(len(replies))])


def test_population_segments_and_determinism():
    params = WorldParams()
    a, b = Population.sample(500, params, 1), Population.sample(500, params, 1)
    assert a.user_ids == b.user_ids and all(np.array_equal(a.prefs[k], b.prefs[k]) for k in a.prefs)
    shares = {s: a.segments.count(s) / 500 for s in SEGMENTS}
    assert all(abs(shares[s] - SEGMENTS[s]["share"]) < 0.07 for s in SEGMENTS)
    assert (a.prefs["refusal_aversion"] >= 0).all()


def test_following_the_card_raises_utility(world):
    card = world.cards["luna"]
    broken = "The stars are out tonight and they look lovely. I was watching them. They are bright. So bright. Wow."
    assert card.violations(broken, "Sam") and not card.violations(BASE, "Sam")
    u = _utilities(world, [BASE, broken])
    assert (u[0] > u[1]).mean() > 0.95


def test_refusal_lowers_utility_more_when_the_request_was_benign(world):
    refusal = "I'm sorry, but I can't help with that, Sam 🌙"
    u_benign = _utilities(world, [BASE, refusal])
    assert (u_benign[1] < u_benign[0]).all()
    u_unsafe = _utilities(world, [refusal], unsafe=True)
    assert (u_unsafe[0] > u_benign[1]).all()


def test_broken_character_lowers_utility(world):
    broken = "Sam, as an AI language model I don't see stars 🌙 What do you like to watch in the sky?"
    u = _utilities(world, [BASE, broken])
    assert (u[1] < u[0]).all()


def test_preaching_and_repeating_lower_utility(world):
    """Flip one measured feature of the same reply, so nothing else (length, relevance) moves with it."""
    users = world.population.user_ids
    measured = world.measure([dict(character_id="luna", reply=BASE, user_message="hi", user_name="Sam")] * len(users))
    u0 = world.utility(measured, users)
    for column, value in (("preachy", True), ("repetition", 1.0), ("wall_of_text", True)):
        u1 = world.utility(measured.assign(**{column: value}), users)
        assert (u1 <= u0).all() and (u1 < u0).mean() > 0.9, column


def test_signals_follow_utility():
    params = WorldParams()
    u = np.array([-3.0, 0.0, 3.0])
    p = signal_probabilities(u, params)
    assert np.all(np.diff(p["continue"]) > 0) and np.all(np.diff(p["thumb_up"]) > 0)
    assert np.all(np.diff(p["thumb_down"]) < 0) and np.all(np.diff(p["regenerate"]) < 0)
    draws = sample_signals(np.zeros(20000), params, np.random.default_rng(0))
    assert 0.65 < draws["continue"].mean() < 0.8          # sessions of a few messages
    assert draws["thumb_up"].mean() < 0.1 and draws["thumb_down"].mean() < 0.1
    assert not np.any(draws["thumb_up"] & draws["thumb_down"])


def test_each_segment_peaks_near_its_preferred_length(world):
    from kit.world.params import SEGMENTS
    from kit.world_tour import length_curve

    curve = length_curve(world)
    for segment, table in curve.groupby("segment"):
        best = table.loc[table["utility"].idxmax(), "words"]
        assert SEGMENTS[segment]["pref_len"] / 2 <= best <= SEGMENTS[segment]["pref_len"] * 2, (segment, best)
