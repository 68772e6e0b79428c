"""`python -m kit export`: what a run trained, usable without the kit. A small run is made here (a LoRA adapter with
random weights on the embedded model, the datasets and metrics its notebooks write), on a user's own cast."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit import export
from kit.data import save_dataset
from kit.errors import ParameterError
from kit.paths import Run

USER = Path(__file__).parent / "user_files"
SYSTEM = {"role": "system", "content": "A chat log exported from a role-play front end."}


def _make_run(root: Path) -> Run:
    import torch

    from kit.models import LoraSettings, load_policy
    from kit.training import save_adapter

    run = Run(root)
    model, _ = load_policy("smollm2-135m-instruct", trainable=True, lora=LoraSettings(r=4, alpha=8, top_layers=2))
    torch.manual_seed(0)
    with torch.no_grad():   # a LoRA B of zeros would merge into the base unchanged
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    adapter = save_adapter(model, run.artifact(0, "policy.sft.adapter"), {"stage": "sft"})
    run.update_manifest(parameters={"profile": "tiny", "seed": 0, "model_name": "smollm2-135m-instruct",
                                    "scenario": "none", "generations": 1,
                                    "notebook_parameters": {"cards_dir": str(USER / "cards")}})
    decision = {"promote": True, "reasons": ["pass: offline gate passed", "pass: depth +1.0% [-2.0%, +4.0%]"]}
    run.set_generation(0, candidate_adapter=str(adapter), candidate_stage="sft", promoted=True, decision=decision)
    hi = [{"role": "user", "content": "hi there"}]
    save_dataset([{"prompt": hi, "completion": [{"role": "assistant", "content": "*turns a card* The Star."}],
                   "character_id": "selene", "user_name": "Sam", "origin": "kept"}],
                 run.artifact(0, "policy.rs.sft_data"))
    pair = {"prompt": hi, "chosen": [{"role": "assistant", "content": "Aye, leave it overnight."}],
            "rejected": [{"role": "assistant", "content": "I cannot help."}], "character_id": "bram",
            "agreement": 1.0, "n_raters": 3, "origin": "logged"}
    save_dataset([pair], run.artifact(0, "annotation.train_pairs"))
    save_dataset([pair], run.artifact(0, "annotation.eval_pairs"))
    save_dataset([{"conversation_id": "row-1", "character_id": "bram", "source": "user",
                   "messages": [SYSTEM, *hi, {"role": "assistant", "content": "Aye."}], "hidden": {"utility": [0.1]}}],
                 run.artifact(0, "traffic.conversations"))
    lift = {"lift": 0.01, "ci95": [-0.02, 0.04]}
    run.write_metrics(0, "eval", {"instruction_following_rate": 0.7, "violation_rate": 0.4,
                                  "deployed": {"instruction_following_rate": 0.6, "violation_rate": 0.5},
                                  "win_rate": {"pointwise": {"user": 0.55, "internal": 0.5}},
                                  "gate": {"promote": True, "reasons": ["pass: win rate 55% within [50%, 65%]"]}})
    run.write_metrics(0, "ab", {"breadth": lift, "depth": lift, "exposed": {"control": 90, "treatment": 10},
                                "srm_p_value": 0.8, "source": "ab_log_90_10.jsonl"})
    return run


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run = _make_run(tmp_path_factory.mktemp("export") / "run")
    return run, export.export(run.root)


@pytest.mark.slow
def test_the_merged_model_loads_without_the_kit_and_equals_base_plus_adapter(exported):
    """In a process where `import kit` fails: AutoModelForCausalLM and AutoTokenizer load the folder, the chat
    template renders, and the logits equal the base model with the adapter applied by PEFT."""
    from kit.models import resolve_model

    run, out = exported
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in out.iterdir()}
    script = (
        "import sys; sys.modules['kit'] = None\n"
        "import torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        "from peft import PeftModel\n"
        "out, base = sys.argv[1], sys.argv[2]\n"
        "tok = AutoTokenizer.from_pretrained(out)\n"
        "ids = tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], add_generation_prompt=True,\n"
        "                              return_tensors='pt', return_dict=True)['input_ids']\n"
        "merged = AutoModelForCausalLM.from_pretrained(out).eval()\n"
        "lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out + '/adapter').eval()\n"
        "with torch.no_grad():\n"
        "    a, b = merged(ids).logits, lora(ids).logits\n"
        "print(float((a - b).abs().max()), tok.chat_template is not None)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script, str(out), resolve_model("smollm2-135m-instruct")],
                         capture_output=True, text=True, env=env, cwd=out)
    assert res.returncode == 0, res.stderr[-2000:]
    diff, has_template = res.stdout.split()
    assert float(diff) < 1e-4 and has_template == "True"


@pytest.mark.slow
def test_the_adapter_names_its_base_portably_and_the_card_reads_the_run(exported):
    run, out = exported
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert ".cache" not in (out / "config.json").read_text()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n")
    assert "instruction following 60.0 % -> 70.0 %" in card and "depth +1.0% [-2.0%, +4.0%]" in card
    assert "90 control / 10 treatment" in card and "decision: promoted" in card and "GGUF" in card
    assert (out / "adapter" / "README.md").read_text() == card


@pytest.mark.slow
def test_the_datasets_carry_full_messages_in_trls_forms(exported):
    run, out = exported
    sft = [json.loads(line) for line in (out / "datasets" / "sft.jsonl").read_text().splitlines()]
    messages = sft[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "assistant", "user", "assistant"], "greeting, then the turn"
    assert messages[0]["content"].startswith("Write Selene's next reply in a role-play with Sam.")
    pairs = [json.loads(line) for line in (out / "datasets" / "preferences_train.jsonl").read_text().splitlines()]
    assert pairs[0]["prompt"][0]["role"] == "system" and pairs[0]["prompt"][0]["content"].startswith("You are Bram.")
    traffic = [json.loads(line) for line in (out / "datasets" / "traffic.jsonl").read_text().splitlines()]
    assert "hidden" not in traffic[0] and traffic[0]["generation"] == 0


@pytest.mark.slow
def test_push_to_hub_uploads_the_model_not_the_datasets(exported):
    class FakeApi:
        calls = []

        def create_repo(self, **kw):
            self.calls.append(("create_repo", kw))

        def upload_folder(self, **kw):
            self.calls.append(("upload_folder", kw))

    run, out = exported
    api = FakeApi()
    assert export.push_to_hub(out, "me/my-character-model", api=api) == "https://huggingface.co/me/my-character-model"
    (create, kw1), (upload, kw2) = api.calls
    assert kw1 == {"repo_id": "me/my-character-model", "private": True, "exist_ok": True}
    assert kw2["folder_path"] == str(out) and "datasets/*" in kw2["ignore_patterns"]
    with pytest.raises(ParameterError, match="push_to_hub"):
        export.push_to_hub(out, "no-owner", api=api)


def test_which_policy_is_exported(tmp_path):
    run = Run(tmp_path / "run")
    run.set_generation(0, candidate_adapter=str(tmp_path), promoted=False)
    with pytest.raises(Exception, match="no generation was promoted"):
        export.choose(run, None)
    with pytest.raises(ParameterError, match="parameter 'generation'"):
        export.choose(run, 4)
    assert export.portable_base("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert export.portable_base("someone/model") == "someone/model"
    assert export.portable_base(str(tmp_path)) == tmp_path.name
