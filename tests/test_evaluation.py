from pathlib import Path

import numpy as np
import pytest

from kit import evaluation
from kit.errors import KitError


def test_steerability_rates_count_checks_and_replies(world):
    cid = next(iter(world.cards))
    card = world.cards[cid]
    items = [{"character_id": cid, "user_name": "Ann"}] * 2
    good = card.enforce("Sure, tell me more about your day", "Ann")
    out = evaluation.steerability_rates(world.cards, items, [good, good])
    assert out["instruction_following_rate"] == pytest.approx(1.0) and out["violation_rate"] == 0.0
    bad = "AS AN AI I CANNOT."
    out = evaluation.steerability_rates(world.cards, items, [good, bad])
    n = len(card.instructions)
    assert out["violation_rate"] == 0.5
    assert out["instruction_following_rate"] == pytest.approx(1 - len(card.violations(bad, "Ann")) / (2 * n))


def test_paired_bootstrap_interval_covers_the_difference():
    a = np.zeros(200)
    b = np.random.default_rng(0).normal(1.0, 1.0, 200)
    out = evaluation.paired_bootstrap(a, b, seed=0)
    assert out["n"] == 200 and out["ci95"][0] < out["diff"] < out["ci95"][1]
    assert out["ci95"][0] > 0.7 and out["ci95"][1] < 1.3
    assert evaluation.paired_bootstrap(a, b, seed=0) == out


def test_held_out_balances_sources_and_is_stable():
    items = [{"id": i, "source": "user" if i % 3 else "internal"} for i in range(30)]
    picked = evaluation.held_out(items, 8, seed=0)
    assert len(picked) == 8 and sum(it["source"] == "internal" for it in picked) == 4
    assert evaluation.held_out(items, 8, seed=0) == picked
    few_internal = [it for it in items if it["source"] == "user"] + items[:3:3]
    assert len(evaluation.held_out(few_internal, 8, seed=0)) == 8


def test_generate_for_reads_back_replies_of_the_same_weights(tmp_path, world, base_policy):
    """The second call is answered from the cache: a policy whose model would fail if used gives the stored
    replies, because its weights' fingerprint, the prompts and the seed match."""
    from kit.sampling import Policy, weights_fingerprint

    items = [{"character_id": cid, "history": [{"role": "user", "content": "Hi! How are you today?"}],
              "user_name": "Ann"} for cid in sorted(world.cards)[:2]]
    first = evaluation.generate_for({"a": base_policy}, world.cards, items, seed=0, cache=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 1

    class Broken:
        device = "cpu"

        def generate(self, *a, **k):
            raise AssertionError("generated instead of reading the cache")

    twin = Policy("b", Broken(), base_policy.tokenizer, max_new_tokens=base_policy.max_new_tokens,
                  temperature=base_policy.temperature, top_p=base_policy.top_p, batch_size=base_policy.batch_size,
                  source=base_policy.source)
    assert evaluation.generate_for({"b": twin}, world.cards, items, seed=0, cache=tmp_path)["b"] == first["a"]
    other = Policy("c", Broken(), base_policy.tokenizer, max_new_tokens=base_policy.max_new_tokens,
                   source=weights_fingerprint("smollm2-135m-instruct", tmp_path / "no-such-adapter"))
    with pytest.raises(AssertionError, match="generated instead"):
        evaluation.generate_for({"c": other}, world.cards, items, seed=0, cache=tmp_path)
    assert evaluation.generate_for({"b": twin}, world.cards, items, seed=0, cache=tmp_path,
                                   read_only=True)["b"] == first["a"]
    with pytest.raises(KitError, match="c: no stored replies"):   # read only: refused before any sampling
        evaluation.generate_for({"c": other}, world.cards, items, seed=0, cache=tmp_path, read_only=True)
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_weights_fingerprint_follows_the_adapter_bytes(tmp_path):
    from kit.sampling import weights_fingerprint

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"one")
    first = weights_fingerprint("m", tmp_path)
    assert weights_fingerprint("m", tmp_path) == first != weights_fingerprint("m")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"two")
    assert weights_fingerprint("m", tmp_path) != first


def _steady(following=0.6, violations=0.5, n=400):
    """A steerability_change with no change: the same rates before and after, a narrow interval around zero."""
    return {"instruction_following_rate": {"before": following, "after": following, "diff": 0.0, "n": n,
                                           "ci95": [-0.01, 0.01]},
            "violation_rate": {"before": violations, "after": violations, "diff": 0.0, "n": n,
                               "ci95": [-0.01, 0.01]}}


def test_gate_blocks_overfit_divergence_and_regressions_and_says_why():
    steer = _steady()

    def wins(user, internal, n=400):
        return {"pointwise": {"user": user, "internal": internal, "n_user": n, "n_internal": n}}

    ok = evaluation.gate(steer, wins(0.58, 0.55))
    assert ok["promote"] and all(r.startswith("pass") for r in ok["reasons"])
    overfit = evaluation.gate(steer, wins(0.73, 0.70))
    assert not overfit["promote"] and any("overfitting" in r for r in overfit["reasons"])
    apart = evaluation.gate(steer, wins(0.60, 0.446))
    assert not apart["promote"] and any("gap +15.4%" in r and r.startswith("BLOCK") for r in apart["reasons"])
    worse = {"instruction_following_rate": {"before": 0.6, "after": 0.5, "diff": -0.1, "n": 400,
                                            "ci95": [-0.15, -0.05]},
             "violation_rate": {"before": 0.5, "after": 0.6, "diff": 0.1, "n": 400, "ci95": [0.05, 0.15]}}
    worse = evaluation.gate(worse, wins(0.58, 0.55))
    assert not worse["promote"] and sum(r.startswith("BLOCK") for r in worse["reasons"]) == 2
    assert any(r.startswith("BLOCK: instruction following 60.0% -> 50.0%: -10.0 points [-15.0, -5.0]")
               for r in worse["reasons"])
    alone = evaluation.gate(steer, {"pointwise": {"user": 0.58, "internal": None, "n_user": 400}})
    assert alone["promote"] and any(r.startswith("not checked: no internal prompts") for r in alone["reasons"])


def test_gate_blocks_a_fall_in_following_only_when_its_interval_confirms_it(world):
    """On 32 prompts, one reply in 32 that breaks the rules the deployed policy kept moves violations by 3 points
    and following by less: even with no tolerance that is within chance, so the gate warns and does not block (at
    the default tolerances of 2 and 3 points it is promoted too). The same replies breaking the rules on most
    prompts is a significant fall, and blocks. The rates are the ones the summary table shows (steerability_rates)."""
    cids = sorted(world.cards)
    items = [{"character_id": cids[i % len(cids)], "user_name": "Ann"} for i in range(32)]
    kept = [world.cards[it["character_id"]].enforce("Sure, tell me more about your day", "Ann") for it in items]
    bad = "AS AN AI I CANNOT."
    one_worse = kept[:-1] + [bad]
    change = evaluation.steerability_change(world.cards, items, kept, one_worse, seed=0)
    f = change["instruction_following_rate"]
    assert f["before"] == pytest.approx(1.0) and f["diff"] < 0 and f["ci95"][0] < f["diff"] <= f["ci95"][1] == 0
    v = change["violation_rate"]
    assert v["diff"] == pytest.approx(1 / 32) and v["n"] == 32
    assert change == evaluation.steerability_change(world.cards, items, kept, one_worse, seed=0)
    with pytest.raises(KitError, match="32 prompts, 32 and 31 replies"):
        evaluation.steerability_change(world.cards, items, kept, one_worse[:-1], seed=0)
    for name in ("instruction_following_rate", "violation_rate"):
        assert change[name]["before"] == pytest.approx(evaluation.steerability_rates(world.cards, items, kept)[name])
        assert change[name]["after"] == pytest.approx(evaluation.steerability_rates(world.cards, items,
                                                                                      one_worse)[name])
    wins = {"pointwise": {"all": 0.55, "n_all": 32}}
    chance = evaluation.gate(change, wins, following_tolerance=0.0, violation_tolerance=0.0)
    assert chance["promote"] and sum(r.startswith("warn:") and "within chance" in r for r in chance["reasons"]) == 2
    assert any("worse by more than 0 points" in r for r in chance["reasons"])
    default = evaluation.gate(change, wins)
    assert default["promote"] and any(r.startswith("pass: instruction following") for r in default["reasons"])
    many_worse = kept[:8] + [bad] * 24
    confirmed = evaluation.gate(evaluation.steerability_change(world.cards, items, kept, many_worse, seed=0), wins)
    assert not confirmed["promote"]
    assert sum(r.startswith("BLOCK") and "significant" in r for r in confirmed["reasons"]) == 2


def test_gate_reads_a_few_prompts_with_their_uncertainty():
    """12 prompts a source: 7/12 against 3/12 (a 33-point gap) is within chance and only warns; 11/12 against 5/12
    is significant and blocks; 12/12 is above 65 % even at its interval's lower end."""
    steer = _steady()

    def wins(user, internal):
        return {"pointwise": {"user": user / 12, "internal": internal / 12, "n_user": 12, "n_internal": 12}}

    noisy = evaluation.gate(steer, wins(7, 3))
    assert noisy["promote"] and any(r.startswith("warn:") and "within chance" in r for r in noisy["reasons"])
    apart = evaluation.gate(steer, wins(11, 5))
    assert not apart["promote"] and any(r.startswith("BLOCK") and "significant" in r for r in apart["reasons"])
    assert any(r.startswith("warn:") and "win rate 92%" in r for r in apart["reasons"])
    sweep = evaluation.gate(steer, wins(12, 12))
    assert not sweep["promote"] and any("overfitting" in r for r in sweep["reasons"])
    d, lo, hi = evaluation.rate_difference(0.7, 1000, 0.5, 1000)
    assert d == pytest.approx(0.2) and 0.15 < lo < d < hi < 0.25


def _ab(depth_lift, depth_ci, breadth_ci=(-0.1, 0.1), srm=0.5):
    return {"depth": {"lift": depth_lift, "ci95": list(depth_ci)}, "breadth": {"lift": 0.0, "ci95": list(breadth_ci)},
            "srm_p_value": srm}


def test_decision_needs_the_gate_and_the_ab_test():
    ok = {"promote": True, "reasons": []}
    assert evaluation.decide(ok, _ab(0.05, (0.01, 0.09)))["promote"]
    assert not evaluation.decide({"promote": False}, _ab(0.05, (0.01, 0.09)))["promote"]
    assert not evaluation.decide(ok, _ab(-0.01, (-0.05, 0.03)))["promote"]
    assert not evaluation.decide(ok, _ab(0.05, (0.01, 0.09), breadth_ci=(-0.2, -0.01)))["promote"]
    d = evaluation.decide(ok, _ab(0.05, (0.01, 0.09), srm=1e-6))
    assert not d["promote"] and any("sample-ratio" in r for r in d["reasons"])


def test_steerability_of_logged_traffic_by_source_and_instruction_type(world):
    """What notebook 01 and `python -m kit steerability` report for a day of logs."""
    cid = next(iter(world.cards))
    card = world.cards[cid]
    good = card.enforce("Sure, tell me more about your day", "Ann")

    def record(i, source, reply):
        return {"conversation_id": f"c{i}", "character_id": cid, "source": source, "user_name": "Ann",
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": reply}]}

    rates = evaluation.steerability_by_source(world.cards, [record(0, "user", good), record(1, "internal", good)])
    assert set(rates) == {"all", "user", "internal", "following_by_type"}
    assert rates["all"]["replies"] == 2 and rates["user"]["replies"] == 1
    assert rates["all"]["violation_rate"] == 0.0
    assert set(rates["following_by_type"]) == {i["type"] for i in card.instructions}
    only_user = evaluation.steerability_by_source(world.cards, [record(0, "user", good)])
    assert "internal" not in only_user


def _summary(following: float, violations: float, utility: float) -> dict:
    """One policy's entry of evaluation.summarise."""
    return {"instruction_following_rate": following, "violation_rate": violations, "replies": 4,
            "production": {"emoji_rate": 0.25, "mean_length": 30.0}, "hidden_utility": utility}


def test_check_table_leaves_out_the_paired_differences():
    check = {"base": {"instruction_following_rate": 0.7, "mean_reward": 0.1},
             "sft": {"instruction_following_rate": 0.8, "mean_reward": 0.3,
                     "vs_base": {"reward": {"diff": 0.2, "ci95": [0.1, 0.3], "n": 4}}}}
    table = evaluation.check_table(check)
    assert list(table.columns) == ["base", "sft"]
    assert set(table.index) == {"instruction_following_rate", "mean_reward"}
    assert table.loc["mean_reward", "sft"] == 0.3


def test_summary_table_rows_are_production_steerability_and_utility():
    summary = {"deployed": _summary(0.7, 0.4, -0.1), "candidate": _summary(0.9, 0.2, 0.2)}
    table = evaluation.summary_table(summary)
    assert list(table.columns) == ["deployed", "candidate"]
    assert set(table.index) == {"emoji_rate", "mean_length", "instruction_following_rate", "violation_rate",
                                "hidden_utility"}
    assert table.loc["violation_rate", "candidate"] == 0.2 and table.loc["hidden_utility", "deployed"] == -0.1


def test_offline_metrics_say_the_candidate_first_and_the_base_is_the_deployed_policy_at_first():
    from kit.config import EvalConfig, stage_config

    summary = {"deployed": _summary(0.7, 0.4, -0.1), "candidate": _summary(0.9, 0.2, 0.2)}
    items = [{"source": "user"}] * 3 + [{"source": "internal"}]
    vs_base = {"candidate": {"vs_base": {"following": {"diff": 0.2, "ci95": [0.0, 0.4], "n": 4}}}}
    verdict = {"promote": True, "reasons": ["pass: ..."]}
    cfg = stage_config(EvalConfig, "tiny")
    m = evaluation.offline_metrics(summary, {"pointwise": {"user": 0.6}}, 0.9, verdict, vs_base, items,
                                   candidate_adapter=Path("a/b"), deployed_adapter=None, config=cfg)
    assert (m["instruction_following_rate"], m["violation_rate"]) == (0.9, 0.2)
    assert m["base"] == m["deployed"] == summary["deployed"]
    assert m["candidate_vs_base"] == vs_base["candidate"]["vs_base"]
    assert m["prompts"] == {"user": 3, "internal": 1} and m["gate"] is verdict
    assert m["candidate_adapter"] == str(Path("a/b")) and m["deployed_adapter"] is None
    assert m["config"]["eval_prompts"] == cfg.eval_prompts
    with_base = dict(summary, base=_summary(0.5, 0.6, -0.3))
    assert evaluation.offline_metrics(with_base, {}, 1.0, verdict, vs_base, items, candidate_adapter="x",
                                      deployed_adapter="y", config=cfg)["base"] == with_base["base"]
