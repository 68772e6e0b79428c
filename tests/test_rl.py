"""Online RL: near-policy prompt choice, and one real step of each algorithm with explicit loss type and KL."""
import pandas as pd
import pytest

from kit import rl
from kit.config import PolicyConfig, stage_config
from kit.errors import ParameterError


def test_near_policy_prompts_prefer_low_or_varied_reward():
    items = [{"i": i} for i in range(6)]
    table = pd.DataFrame({"item": [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "origin": ["policy@T1"] * 12,
                          "reward": [5, 5, -3, -3, 1, 1, 4, -4, 2, 2, 3, 3]})
    chosen, report = rl.near_policy_prompts(items, table, 2, seed=0)
    assert [c["i"] for c in chosen] == [1, 3]          # lowest mean; most varied
    assert report["mean_reward_chosen"] < report["mean_reward_all"]
    off, report = rl.near_policy_prompts(items, table, 2, seed=0, near_policy=False)
    assert report["chosen_by"] == "random" and len(off) == 2


def test_rl_algorithm_is_checked():
    with pytest.raises(ParameterError, match="rl_algorithm"):
        stage_config(PolicyConfig, "tiny", rl_algorithm="ppo")
    with pytest.raises(ParameterError, match="rl_num_generations"):
        stage_config(PolicyConfig, "tiny", rl_num_generations=1)


@pytest.fixture(scope="module")
def start_adapter(world, tmp_path_factory):
    from kit import sft

    out = tmp_path_factory.mktemp("rl") / "sft"
    recs = [{"prompt": [{"role": "user", "content": f"hi {i}"}],
             "completion": [{"role": "assistant", "content": "Hello, friend!"}], "character_id": "aria"}
            for i in range(4)]
    sft.train_sft("smollm2-135m-instruct", recs, world.cards, out, stage_config(PolicyConfig, "tiny"), 0)
    return out


def _short_is_better(items, replies):
    return [-float(len(r)) for r in replies]


ITEMS = [{"character_id": "aria", "user_name": "Ann", "history": [{"role": "user", "content": "hey, what's up?"}]},
         {"character_id": "aria", "user_name": None, "history": [{"role": "user", "content": "tell me a joke"}]}]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["online_dpo"])   # grpo runs in the tiny flywheel (tests/test_flywheel.py)
def test_one_rl_step(algorithm, world, start_adapter, tmp_path):
    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm=algorithm, rl_steps=1, max_new_tokens=12)
    log = rl.train("smollm2-135m-instruct", start_adapter, ITEMS, world.cards, _short_is_better, tmp_path / "rl",
                   cfg, 0)
    assert log["algorithm"] == algorithm and log["beta"] == cfg.rl_beta > 0
    assert log["reference"].startswith("adapter 'ref'")
    assert log["curves"]["reward"] and log["curves"]["kl"]
    assert (tmp_path / "rl" / "adapter_model.safetensors").exists()
