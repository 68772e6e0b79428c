"""Online RL: near-policy prompt choice, and one real step of each algorithm with explicit loss type and KL."""
from types import SimpleNamespace

import pandas as pd
import pytest

from kit import rl
from kit.config import PolicyConfig, stage_config
from kit.errors import ParameterError


def test_near_policy_prompts_prefer_low_or_varied_reward():
    items = [{"i": i} for i in range(6)]
    table = pd.DataFrame({"item": [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "origin": ["policy:deployed"] * 12,
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


def test_length_control_charges_only_replies_that_stray_beyond_the_tolerance():
    """The reference is the first batch's mean words (the start policy's first RL samples); a reply within
    +/- tolerance of it keeps its reward, one beyond loses weight x the excess log ratio, longer or shorter."""
    import numpy as np

    fn = rl.length_controlled(lambda items, replies: [1.0] * len(replies), weight=2.0, tolerance=0.15)
    assert fn.reference_words is None
    first = fn(None, ["w " * 9, "w " * 11])               # mean 10 words: the reference
    assert fn.reference_words == 10.0 and first.tolist() == [1.0, 1.0]
    later = fn(None, ["w " * 10, "w " * 11, "w " * 21, "w " * 4])
    excess = lambda n: np.log((n + 1) / 11) - np.log(1.15)   # noqa: E731
    assert later[:2].tolist() == [1.0, 1.0]                   # (n + 1) / 11 = 1 and 1.09: within 1.15
    assert later[2] == pytest.approx(1.0 - 2.0 * excess(21))
    assert later[3] == pytest.approx(1.0 - 2.0 * (np.log(11 / 5) - np.log(1.15)))
    assert fn.reference_words == 10.0                         # fixed after the first call


def test_rl_reward_is_length_controlled_only_when_asked(monkeypatch):
    import kit.rewards

    monkeypatch.setattr(kit.rewards, "load_composite_reward",
                        lambda *a, **k: (lambda items, replies: [0.0] * len(replies)))
    table = pd.DataFrame({"reward": [1.0, 2.0, 3.0]})
    plain = rl.rl_reward(None, 0, {}, table, stage_config(PolicyConfig, "tiny"), None)
    assert not isinstance(plain, rl.length_controlled)
    cfg = stage_config(PolicyConfig, "tiny", rl_length_weight=1.5, rl_length_tolerance=0.2)
    controlled = rl.rl_reward(None, 0, {}, table, cfg, None)
    assert isinstance(controlled, rl.length_controlled)
    assert (controlled.weight, controlled.tolerance) == (1.5, 0.2)
    with pytest.raises(ParameterError, match="rl_length_weight"):
        stage_config(PolicyConfig, "tiny", rl_length_weight=-1.0)


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
@pytest.mark.parametrize("algorithm", ["grpo"])   # online_dpo, the default, runs in the tiny flywheel
def test_one_rl_step(algorithm, world, start_adapter, tmp_path):
    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm=algorithm, rl_steps=1, max_new_tokens=12)
    log = rl.train("smollm2-135m-instruct", start_adapter, ITEMS, world.cards, _short_is_better, tmp_path / "rl",
                   cfg, 0)
    assert log["algorithm"] == algorithm and log["beta"] == cfg.rl_beta > 0
    assert log["reference"].startswith("adapter 'ref'")
    assert log["curves"]["reward"] and log["curves"]["kl"]
    assert (tmp_path / "rl" / "adapter_model.safetensors").exists()


def _long_items(n_turns: int) -> list[dict]:
    turns = []
    for i in range(n_turns):
        turns += [{"role": "user", "content": f"tell me everything about the storm on day {i}, every detail"},
                  {"role": "assistant", "content": "Arr, the waves rose like mountains and the mast cracked twice!"}]
    return [{"character_id": "aria", "user_name": "Ann", "history": turns + [{"role": "user", "content": "and then?"}]},
            {"character_id": "aria", "user_name": None, "history": [{"role": "user", "content": "hi"}]}]


class _Loaded(Exception):
    pass


def test_rl_policy_sees_its_longest_prompt_and_a_whole_completion(world, monkeypatch):
    """Defect 2: the RL policy was loaded with max_seq_length = sft_max_length; TRL's GRPO does not truncate
    prompts and Unsloth's fast forward cuts at max_seq_length, so late-turn samples were cut."""
    from kit import models
    from kit.models import load_tokenizer

    cfg = stage_config(PolicyConfig, "tiny", sft_max_length=128, max_new_tokens=24)
    items = _long_items(6)
    tok = load_tokenizer()
    longest = max(len(tok.apply_chat_template(world.cards[it["character_id"]].prompt(it["history"], it["user_name"]),
                                              add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
                  for it in items)
    assert longest + cfg.max_new_tokens > cfg.sft_max_length   # the case that was cut
    seen = []

    def load_policy(*args, **kwargs):
        seen.append(kwargs["max_seq_length"])
        raise _Loaded

    monkeypatch.setattr(models, "load_policy", load_policy)
    for algorithm in ("grpo", "online_dpo"):
        with pytest.raises(_Loaded):
            rl.train("smollm2-135m-instruct", "/nonexistent/adapter", items, world.cards, _short_is_better, "/nowhere",
                     stage_config(PolicyConfig, "tiny", sft_max_length=128, max_new_tokens=24,
                                  rl_algorithm=algorithm), 0)
    assert seen == [longest + cfg.max_new_tokens] * 2
    short = rl.max_seq_length(tok, [{"prompt": [{"role": "user", "content": "hi"}]}], 24, floor=768)
    assert short == 768   # never below what SFT and DPO load with


def test_grpo_reports_the_loss_type_and_kl_its_trainer_ran_with(world, monkeypatch, tmp_path):
    """Defect 8: the log copied loss type and beta from the config, so tests/test_gpu.py could not see Unsloth
    replace them. A trainer that ran with dapo / beta 0 must be reported as such."""
    import trl

    from kit import models

    class Trainer:
        def __init__(self, model, args, **kwargs):
            self.model = model
            self.args = SimpleNamespace(loss_type="dapo", beta=0.0)   # what a patched trainer might run with
            self.state = SimpleNamespace(log_history=[])

        def train(self):
            pass

    model = SimpleNamespace(peft_config={"default": None})
    monkeypatch.setattr(models, "load_policy", lambda *a, **k: (model, models.load_tokenizer()))
    monkeypatch.setattr(trl, "GRPOTrainer", Trainer)
    monkeypatch.setattr(trl, "GRPOConfig", lambda **kwargs: SimpleNamespace(**kwargs))
    monkeypatch.setattr(rl, "save_adapter", lambda model, out, meta: meta)
    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm="grpo", rl_loss_type="grpo", rl_beta=0.04)
    log = rl.train("smollm2-135m-instruct", "/nonexistent/adapter", ITEMS, world.cards, _short_is_better,
                   tmp_path / "rl", cfg, 0)
    assert (log["loss_type"], log["beta"]) == ("dapo", 0.0)
    assert log["reference"].startswith("none (beta = 0")


def test_grpo_masks_and_charges_samples_the_limit_cut_when_asked(world, monkeypatch, tmp_path):
    """rl_mask_truncated reaches GRPOConfig; rl_unfinished_penalty charges a completion that fills the token limit
    without an end token, and no other."""
    import trl

    from kit import models

    seen = {}

    class Trainer:
        def __init__(self, model, args, reward_funcs, **kwargs):
            self.model, self.args = model, args
            self.state = SimpleNamespace(log_history=[])
            seen["args"], seen["reward"] = args, reward_funcs

        def train(self):
            pass

    tok = models.load_tokenizer()
    model = SimpleNamespace(peft_config={"default": None}, generation_config=SimpleNamespace(eos_token_id=[7]))
    monkeypatch.setattr(models, "load_policy", lambda *a, **k: (model, tok))
    monkeypatch.setattr(trl, "GRPOTrainer", Trainer)
    monkeypatch.setattr(trl, "GRPOConfig", lambda **kwargs: SimpleNamespace(**kwargs))
    monkeypatch.setattr(rl, "save_adapter", lambda model, out, meta: meta)
    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm="grpo", rl_unfinished_penalty=0.5, rl_mask_truncated=True,
                       max_new_tokens=3)
    log = rl.train("smollm2-135m-instruct", "/nonexistent/adapter", ITEMS, world.cards, lambda i, r: [1.0] * len(r),
                   tmp_path / "rl", cfg, 0)
    assert seen["args"].mask_truncated_completions is True
    assert log["mask_truncated_completions"] is True and log["unfinished_penalty"] == 0.5
    ids = [[5, 6, 8], [5, 6, 7], [5, tok.eos_token_id], [5, 6, tok.eos_token_id], [5, 6]]
    rewards = seen["reward"](prompts=[""] * 5, completions=["x"] * 5, character_id=["aria"] * 5, user_name=[""] * 5,
                             history=[[]] * 5, completion_ids=ids)
    assert rewards == [0.5, 1.0, 1.0, 1.0, 1.0]      # only the first filled the limit without ending
    plain = stage_config(PolicyConfig, "tiny", rl_algorithm="grpo", max_new_tokens=3)
    rl.train("smollm2-135m-instruct", "/nonexistent/adapter", ITEMS, world.cards, lambda i, r: [1.0] * len(r),
             tmp_path / "rl2", plain, 0)
    assert seen["args"].mask_truncated_completions is False
    assert seen["reward"](prompts=[""], completions=["x"], character_id=["aria"], user_name=[""], history=[[]],
                          completion_ids=[[5, 6, 8]]) == [1.0]


@pytest.mark.parametrize("options, chosen, rejected", [
    ({}, "a long reply the limit cut", "short"),
    ({"rl_mask_truncated": True}, "a finished middle reply", "short"),
    ({"rl_unfinished_penalty": 2.5}, "a finished middle reply", "a long reply the limit cut"),
    ({"rl_max_len_diff": 2}, "a long reply the limit cut", "a finished middle reply"),   # 6, 1 and 4 words
])
def test_online_dpo_charges_and_masks_samples_the_limit_cut(options, chosen, rejected, world, monkeypatch, tmp_path):
    """The same two options as GRPO's: the penalty comes off a cut sample's reward before ranking, and with the mask
    a cut sample is never the chosen reply of a pair."""
    import trl

    from kit import models, sampling

    seen = []

    class Trainer:
        def __init__(self, model, args, train_dataset, **kwargs):
            self.model = model
            self.state = SimpleNamespace(log_history=[])
            seen.extend(train_dataset)

        def train(self):
            pass

    replies = ["a long reply the limit cut", "short", "a finished middle reply"]

    def generate(model, tok, convs, *, cut=None, **kwargs):
        cut[:] = [True, False, False]
        return list(replies)

    model = SimpleNamespace(peft_config={"default": None}, named_parameters=lambda: [], eval=lambda: None)
    monkeypatch.setattr(rl, "_start", lambda *a, **k: (model, models.load_tokenizer()))
    monkeypatch.setattr(sampling, "generate_replies", generate)
    monkeypatch.setattr(trl, "DPOTrainer", Trainer)
    monkeypatch.setattr(rl, "save_adapter", lambda model, out, meta: meta)
    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm="online_dpo", rl_steps=1, rl_prompts_per_step=1,
                       rl_num_generations=3, **options)
    reward = {"a long reply the limit cut": 3.0, "short": 1.0, "a finished middle reply": 2.0}
    log = rl.train("smollm2-135m-instruct", "/nonexistent/adapter", ITEMS[:1], world.cards,
                   lambda items, rs: [reward[r] for r in rs], tmp_path / "rl", cfg, 0)
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in seen] == [(chosen, rejected)]
    assert log["mask_truncated_completions"] is cfg.rl_mask_truncated
    assert log["unfinished_penalty"] == cfg.rl_unfinished_penalty
    assert log["max_len_diff"] == cfg.rl_max_len_diff and log["prompts_without_pair"] == 0


def test_online_dpo_pair_obeys_annotations_surface_filter():
    """With no limits the pair is (best allowed, worst); with limits, the largest reward gap among the pairs whose
    replies differ by at most that many words and emoji, so that a row of emoji the reward over-rates never wins a
    pair against plain replies; None when no pair qualifies."""
    replies = ["hi there 😀😀😀😀", "a plain answer here", "ok", "a much longer plain reply with many more words in it"]
    rewards = [5.0, 3.0, 1.0, 2.0]
    everyone = [True] * 4
    assert rl.dpo_pair(rewards, everyone, replies) == (0, 2)
    assert rl.dpo_pair(rewards, [False, True, True, True], replies) == (1, 2)
    assert rl.dpo_pair(rewards, everyone, replies, max_emoji_diff=2) == (1, 2)      # the emoji row pairs with none
    assert rl.dpo_pair(rewards, everyone, replies, max_emoji_diff=4) == (0, 2)
    # words 2 (emoji are not words), 4, 1, 11: within 3 words, (0, 2) and (1, 2) qualify; emoji then leave (1, 2)
    assert rl.dpo_pair(rewards, everyone, replies, max_len_diff=3) == (0, 2)
    assert rl.dpo_pair(rewards, everyone, replies, max_len_diff=3, max_emoji_diff=0) == (1, 2)
    assert rl.dpo_pair(rewards, everyone, replies, max_len_diff=0) is None
    assert rl.dpo_pair([1.0] * 4, everyone, replies) is None
    assert rl.dpo_pair(rewards, everyone, ["same"] * 4) is None


@pytest.mark.parametrize("backend, mode", [("unsloth", "train"), ("transformers-cpu", "eval"),
                                           ("transformers-nf4", "eval")])
def test_online_dpo_samples_in_the_mode_its_backend_needs(backend, mode, world, monkeypatch, tmp_path):
    """Unsloth's generate restores training mode (checkpointing, its generation flag, its cached LoRA copies) only
    when called in training mode (unsloth/models/llama.py, unsloth_fast_generate and for_training); called in eval
    mode, the DPO step would run with the generation flag set. Other backends sample in eval mode (no dropout)."""
    import trl

    from kit import models, sampling

    modes = []

    class Model:
        peft_config = {"default": None}
        training = None

        def named_parameters(self):
            return []

        def train(self, on=True):
            self.training = on

        def eval(self):
            self.training = False

    class Trainer:
        def __init__(self, model, **kwargs):
            self.model, self.state = model, SimpleNamespace(log_history=[])

        def train(self):
            self.model.train()

    def generate(model, tok, convs, *, cut=None, **kwargs):
        modes.append("train" if model.training else "eval")
        cut[:] = [False] * len(convs)
        return [f"reply {i}" for i in range(len(convs))]

    monkeypatch.setattr(models, "choose_backend", lambda *a, **k: models.Backend(backend, "cpu", "float32", False))
    monkeypatch.setattr(rl, "_start", lambda *a, **k: (Model(), models.load_tokenizer()))
    monkeypatch.setattr(sampling, "generate_replies", generate)
    monkeypatch.setattr(trl, "DPOTrainer", Trainer)
    monkeypatch.setattr(rl, "save_adapter", lambda model, out, meta: meta)
    cfg = stage_config(PolicyConfig, "tiny", rl_algorithm="online_dpo", rl_steps=2, rl_prompts_per_step=1,
                       rl_num_generations=2)
    log = rl.train("smollm2-135m-instruct", "/nonexistent/adapter", ITEMS[:1], world.cards,
                   lambda items, rs: [float(r[-1]) for r in rs], tmp_path / "rl", cfg, 0)
    assert modes == [mode, mode] and log["backend"] == backend
