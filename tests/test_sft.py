"""SFT: the loss falls on the assistant's reply and its end-of-turn token, nothing else; one BOS; the adapter
loads with PEFT's AutoPeftModelForCausalLM."""
import tempfile

import pytest

from kit import sft
from kit.config import PolicyConfig, stage_config

REPLY = "Ahoy, Ann! The tide is turning; shall we sail?"


def _records(n=4):
    return [{"prompt": [{"role": "user", "content": f"hello there, number {i}"}],
             "completion": [{"role": "assistant", "content": REPLY}], "character_id": "captain_rook",
             "user_name": "Ann"} for i in range(n)]


@pytest.fixture(scope="module")
def cards(world):
    assert "captain_rook" in world.cards, sorted(world.cards)
    return world.cards


@pytest.mark.slow
def test_loss_mask_covers_only_the_reply_and_its_end_of_turn(cards):
    from kit.models import load_policy

    cfg = stage_config(PolicyConfig, "tiny")
    model, tok = load_policy("smollm2-135m-instruct", trainable=True)
    rows = sft.examples(_records(2), cards)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = sft.make_trainer(model, tok, rows, cfg, 0, tmp)
        batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    learned = [t for t, lab in zip(ids, labels) if lab != -100]
    assert all(lab in (-100, t) for t, lab in zip(ids, labels))
    text = tok.decode(learned)
    assert text.strip() == REPLY + tok.eos_token, text            # the reply, then <|im_end|>: EOS is learned
    assert learned.count(tok.eos_token_id) == 1
    first = next(i for i, lab in enumerate(labels) if lab != -100)
    prompt_text = tok.decode(ids[:first])
    assert prompt_text.endswith("<|im_start|>assistant\n")      # everything before is the prompt, unlearned
    assert "hello there, number 0" in prompt_text and "Rules you always follow" in prompt_text
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids[1] != ids[0], "one BOS, not two"


@pytest.mark.slow
def test_sft_adapter_of_the_flywheel_is_a_peft_adapter(tiny_flywheel):
    """The tiny flywheel's SFT stage (notebook 04) trained through kit.sft.train_sft: its adapter is in PEFT
    format and loads with AutoPeftModelForCausalLM; the loss saw fewer tokens than the model read."""
    adapter = tiny_flywheel.artifact(0, "policy.sft.adapter")
    files = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "kit_policy.json"} <= files
    assert sft.load_adapter_check(adapter) == "PeftModelForCausalLM"
    log = tiny_flywheel.read_metrics(0, "policy", "sft")["training"]
    assert log["loss"] and 0 < log["loss_tokens_per_epoch"] < log["tokens_per_epoch"]



@pytest.mark.slow
def test_an_adapter_loaded_to_generate_is_merged_with_the_same_outputs(tiny_flywheel):
    """kit.models merges an adapter loaded only for inference: no PEFT wrapper left, the same logits."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from kit.models import load_policy, resolve_model

    adapter = tiny_flywheel.artifact(0, "policy.sft.adapter")
    merged, tok = load_policy("smollm2-135m-instruct", adapter)
    assert not isinstance(merged, PeftModel)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m-instruct")),
                                      str(adapter)).eval()
    ids = tok("<|im_start|>user\nhello there<|im_end|>\n", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        a, b = merged(**ids).logits, plain(**ids).logits
    assert torch.allclose(a, b, atol=1e-4)

def test_examples_refuse_an_unknown_character(cards):
    from kit.errors import KitError

    bad = _records(1)
    bad[0]["character_id"] = "nobody"
    with pytest.raises(KitError, match="nobody"):
        sft.examples(bad, cards)


@pytest.mark.slow
def test_open_ended_targets_train_their_words_but_not_the_end_of_turn(cards):
    """With sft_open_ends, a target the generation limit cut short trains no end-of-turn token; a whole reply does,
    and both render token for token as TRL's conversational path renders them."""
    from kit.models import load_policy

    cfg = stage_config(PolicyConfig, "tiny", sft_open_ends=True)
    model, tok = load_policy("smollm2-135m-instruct", trainable=True)
    records = _records(2)
    records[1]["open_end"] = True
    rows = sft.examples(records, cards)
    assert [r["open_end"] for r in rows] == [False, True]
    with tempfile.TemporaryDirectory() as tmp:
        ours = sft.make_trainer(model, tok, rows, cfg, 0, tmp)
        trl = sft.make_trainer(model, tok, rows, stage_config(PolicyConfig, "tiny", sft_open_ends=False), 0, tmp)
        batches = [t.data_collator([t.train_dataset[i]]) for t in (ours, trl) for i in (0, 1)]
    learned = [tok.decode([t for t, lab in zip(b["input_ids"][0].tolist(), b["labels"][0].tolist()) if lab != -100])
               for b in batches]
    assert learned[0].strip() == REPLY + tok.eos_token == learned[2].strip() == learned[3].strip()
    assert learned[1].strip() == REPLY, learned[1]                     # the words, no <|im_end|>
    assert batches[0]["input_ids"].tolist() == batches[2]["input_ids"].tolist()
    assert batches[1]["input_ids"].tolist() == batches[3]["input_ids"].tolist()
