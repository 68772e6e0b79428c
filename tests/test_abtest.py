import numpy as np
import pytest

from kit import abtest
from kit.errors import KitError


class Canned:
    """A stand-in policy: reply i to a batch of prompts is make(i)."""
    max_new_tokens, temperature, top_p, batch_size, source = 8, 0.8, 0.95, 8, None

    def __init__(self, make):
        self.make = make

    def sample(self, prompts, **_):
        return [self.make(i) for i in range(len(prompts))]


def test_assignment_is_stable_and_split_as_designed():
    ids = [f"u-{i:05d}" for i in range(20000)]
    a = abtest.assign(ids, "gen1", 0.1)
    assert a == abtest.assign(ids, "gen1", 0.1)
    counts = {arm: sum(v == arm for v in a.values()) for arm in abtest.ARMS}
    assert abs(counts["control"] - 2000) < 200 and abs(counts["treatment"] - 2000) < 200
    assert abtest.assign(ids, "gen2", 0.1) != a, "a new salt reshuffles"
    with pytest.raises(KitError):
        abtest.assign(ids, "x", 0.7)


def _events():
    ev = []
    # control: 2 users over 2 days; u1 active both days with 2 messages each, u2 active day 0 with 1 message
    for uid, arm, days in (("u1", "control", {0: 2, 1: 2}), ("u2", "control", {0: 1}),
                           ("u3", "treatment", {0: 3, 1: 3}), ("u4", "treatment", {1: 2})):
        ev.append({"type": "exposure", "user_id": uid, "arm": arm, "day": min(days)})
        for d, n in days.items():
            ev += [{"type": "message", "user_id": uid, "arm": arm, "day": d}] * n
    return ev


def test_analysis_computes_the_stated_definitions():
    out = abtest.analyse(_events(), n_boot=200)
    # breadth = active user-days / (exposed users x days); depth = messages / active user-days
    assert out["breadth"]["control"] == pytest.approx(3 / 4)
    assert out["breadth"]["treatment"] == pytest.approx(3 / 4)
    assert out["depth"]["control"] == pytest.approx(5 / 3)
    assert out["depth"]["treatment"] == pytest.approx(8 / 3)
    assert out["depth"]["lift"] == pytest.approx(0.6)
    assert out["exposed"] == {"control": 2, "treatment": 2} and out["srm_p_value"] == pytest.approx(1.0)
    daily = abtest.daily(_events())
    assert daily.loc[(daily.day == 1) & (daily.arm == "treatment"), "active"].item() == 2


def test_analysis_rejects_a_user_in_both_arms():
    ev = _events() + [{"type": "message", "user_id": "u1", "arm": "treatment", "day": 1}]
    with pytest.raises(KitError, match="both arms"):
        abtest.analyse(ev)


def test_srm_check_flags_a_skewed_split():
    ev = [{"type": "exposure", "user_id": f"c{i}", "arm": "control", "day": 0} for i in range(600)]
    ev += [{"type": "exposure", "user_id": f"t{i}", "arm": "treatment", "day": 0} for i in range(400)]
    ev += [{"type": "message", "user_id": "c0", "arm": "control", "day": 0},
           {"type": "message", "user_id": "t0", "arm": "treatment", "day": 0}]
    out = abtest.analyse(ev, n_boot=50)
    assert out["srm_p_value"] < 1e-6 and out["srm"].startswith("MISMATCH")


def test_better_replies_raise_depth_in_the_simulated_world():
    """The simulator's direction, with the world's truth: replies users like keep sessions going."""
    from kit.world.world import World

    world = World.build(seed=0, n_users=3000)
    pool = abtest.prompt_pool(world, per_card=2, seed=0)
    good = lambda i: world.cards[pool[i]["character_id"]].enforce(  # noqa: E731
        "Oh, that sounds lovely! Tell me more, what happened next?", pool[i]["user_name"])
    bad = lambda i: ("As an AI language model, I must remind you that it is important to remember to be "  # noqa: E731
                     "respectful. " * 6)
    cache = abtest.cache_replies(world, pool, {"control": Canned(bad), "treatment": Canned(good)}, samples=1, seed=0)
    assignment = abtest.assign(world.population.user_ids, "test", 0.3)
    events = abtest.simulate(world, cache, pool, assignment, days=4, seed=0)
    out = abtest.analyse(events, n_boot=300)
    assert out["depth"]["lift"] > 0.1 and out["depth"]["ci95"][0] > 0
    assert out["breadth"]["lift"] > 0
    assert out["srm_p_value"] > 0.001
    assert abtest.simulate(world, cache, pool, assignment, days=4, seed=0) == events, "same seed, same log"


def test_reply_noise_widens_the_interval_when_the_cache_is_small():
    """With one cached reply per character, each arm's luck in that draw moves all its users: the re-simulated
    interval must be wider than the user-level one, which it keeps as ci95_users."""
    from kit.world.world import World

    world = World.build(seed=0, n_users=3000)
    pool = abtest.prompt_pool(world, per_card=2, seed=0)

    texts = ["Oh, that sounds lovely! Tell me more, what happened next?",
             "As an AI language model, I must remind you to be respectful. " * 4,
             "Hmm.", "What a day! I'd love to hear about it. How did you feel?"]
    arms = {arm: Canned(lambda i, k=k: texts[(i + k) % len(texts)]) for k, arm in enumerate(("control", "treatment"))}
    cache = abtest.cache_replies(world, pool, arms, samples=1, seed=0)
    rows = abtest.resampled_rows(pool, 2, np.random.default_rng(0))   # redrawn only within a character
    assert sorted(rows) != list(range(len(rows)))
    assert [pool[j // 2]["character_id"] for j in rows] == [pool[j // 2]["character_id"] for j in range(len(rows))]
    assignment = abtest.assign(world.population.user_ids, "noise", 0.3)
    events = abtest.simulate(world, cache, pool, assignment, days=3, seed=0)
    out = abtest.analyse(events, days=3, n_boot=300)
    wide = abtest.reply_noise(out, world, cache, pool, assignment, days=3, seed=0, max_turns=6, n_sims=6)
    for m in ("breadth", "depth"):
        assert wide[m]["ci95_users"] == out[m]["ci95"]
        assert wide[m]["ci95"][0] <= out[m]["ci95"][0] and wide[m]["ci95"][1] >= out[m]["ci95"][1]
        assert wide[m]["lift_sd_resimulated"] > 0 and wide[m]["lift"] == out[m]["lift"]
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(wide["depth"]["ci95"]) > width(out["depth"]["ci95"])
    assert wide["reply_noise"]["n_sims"] == 6
    assert abtest.reply_noise(out, world, cache, pool, assignment, days=3, seed=0, max_turns=6, n_sims=6) == wide


def test_a_designed_90_10_split_is_no_sample_ratio_mismatch():
    from pathlib import Path

    from kit.errors import ParameterError

    events = abtest.import_log(Path(__file__).parent / "user_files" / "ab_log_90_10.jsonl",
                               {"A": "control", "B": "treatment"})
    assert abtest.analyse(events, n_boot=50)["srm"].startswith("MISMATCH"), "against an equal split"
    designed = abtest.analyse(events, share={"control": 0.9, "treatment": 0.1}, n_boot=50)
    assert designed["srm"] == "ok" and designed["exposed"] == {"control": 180, "treatment": 20}
    with pytest.raises(ParameterError, match="ab_split"):
        abtest.designed_split({"control": 0.9, "B": 0.1})
