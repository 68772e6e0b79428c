"""What a run trained, usable without the kit: `python -m kit export RUN_DIR [--generation G]`.

Writes <run_dir>/export/gen_<g>/ (or --out):

    config.json, model.safetensors, tokenizer files, chat_template.jinja, generation_config.json
                      the policy merged into one model, loadable by AutoModelForCausalLM with no kit installed
    README.md         the model card: data, settings and measured results, read from the run's metrics.json files
    adapter/          the LoRA adapter (PEFT), with the base model recorded by its Hub name, not a cache path
    datasets/         what trained it, as JSONL in TRL's forms: sft.jsonl ({"messages"} with the card's system
                      prompt), preferences_train.jsonl / preferences_eval.jsonl (prompt with the system prompt,
                      chosen, rejected), traffic.jsonl (the curated, redacted logs)

Without --generation it exports the policy the run promoted last; with it, that generation's candidate.
`--push-to-hub REPO` uploads the model folder and adapter (never the datasets). GGUF is not written here: the one
exporter the kit's stack has is Unsloth's (`model.save_pretrained_gguf`, which builds llama.cpp), and it runs on a
CUDA GPU; on a GPU, load the merged folder with Unsloth and call it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .config import DEFAULT_MODEL
from .errors import KitError, ParameterError
from .paths import Run, atomic_path, write_text

# The Hub name of each embedded model: what an adapter trained on it records as its base.
PORTABLE_NAMES = {DEFAULT_MODEL: "HuggingFaceTB/SmolLM2-135M-Instruct"}


def portable_base(model_name: str) -> str:
    """The base model's name as another machine can load it: the Hub id of an embedded model, a Hub id as given, a
    local folder's name (the folder itself stays behind)."""
    if model_name in PORTABLE_NAMES:
        return PORTABLE_NAMES[model_name]
    path = Path(model_name).expanduser()
    return path.name if path.exists() else model_name


def choose(run: Run, generation: int | None) -> tuple[int, str, str]:
    """(generation, adapter folder, what it is): the last promoted policy, or generation `generation`'s candidate."""
    gens = run.manifest().get("generations", {})
    if generation is None:
        promoted = [int(g) for g, e in gens.items() if e.get("promoted") and e.get("candidate_adapter")]
        if not promoted:
            raise KitError(f"{run.root}: no generation was promoted; name one with --generation G to export its "
                           f"candidate")
        generation = max(promoted)
        what = "promoted"
    else:
        what = "promoted" if gens.get(str(generation), {}).get("promoted") else "candidate (not promoted)"
    adapter = gens.get(str(generation), {}).get("candidate_adapter")
    if type(generation) is not int or generation < 0 or not adapter:
        have = ", ".join(g for g, e in sorted(gens.items()) if e.get("candidate_adapter")) or "none"
        raise ParameterError("generation", f"a generation of {run.root} with a candidate (it has {have})", generation)
    if not (Path(adapter) / "adapter_config.json").exists():
        raise KitError(f"{adapter}: the candidate adapter of generation {generation} is missing (was the run moved? "
                       f"the manifest records absolute paths)")
    return generation, adapter, what


def export(run_dir, generation: int | None = None, out=None, *, merged: bool = True, datasets: bool = True) -> Path:
    """Write the export folder (see the module's doc) atomically; returns it."""
    root = Path(run_dir).expanduser()
    if not (root / "manifest.json").exists():
        raise ParameterError("run_dir", "a run directory (it has a manifest.json)", str(run_dir))
    run = Run(root)
    generation, adapter, what = choose(run, generation)
    params = run.manifest().get("parameters", {})
    model_name = params.get("model_name", DEFAULT_MODEL)
    out = Path(out).expanduser() if out else run.root / "export" / f"gen_{generation}"
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        if merged:
            _merged(model_name, adapter, tmp)
        _adapter(model_name, adapter, tmp / "adapter")
        counts = write_datasets(run, generation, tmp / "datasets") if datasets else {}
        card = model_card(run, generation, adapter, what, counts, merged=merged)
        write_text(tmp / "README.md", card)
        write_text(tmp / "adapter" / "README.md", card)
    print(f"export: generation {generation} ({what}) -> {out}")
    return out


def _merged(model_name: str, adapter, dest: Path) -> None:
    """Base + adapter merged in full precision, with the tokenizer and its chat template; no trace of the kit."""
    from .training import export_merged

    export_merged(model_name, adapter, dest / ".merged")
    for f in (dest / ".merged").iterdir():
        f.rename(dest / f.name)
    (dest / ".merged").rmdir()
    config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
    config["_name_or_path"] = portable_base(model_name)   # not the kit's cache folder
    (dest / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _adapter(model_name: str, adapter, dest: Path) -> None:
    """The PEFT adapter with the base recorded by its Hub name, and the tokenizer beside it (its chat template is
    the one the adapter was trained with)."""
    from .models import load_tokenizer

    dest.mkdir(parents=True)
    for f in Path(adapter).iterdir():
        if f.is_file() and f.name != "README.md":
            shutil.copy2(f, dest / f.name)
    config = json.loads((dest / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = portable_base(model_name)
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    load_tokenizer(model_name).save_pretrained(str(dest))


# ---------------------------------------------------------------------------------------------- datasets
def _records(run: Run, generation: int, name: str, accumulate: bool = True) -> list[tuple[int, dict]]:
    from .data import load_generations

    try:
        return load_generations(run, generation, name, accumulate=accumulate)
    except KitError:   # a stage that did not run (no A/B, an imported set): nothing to export from it
        return []


def write_datasets(run: Run, generation: int, dest: Path) -> dict[str, int]:
    """Generations 0..g's data, in TRL's forms, each record with its `generation`. Prompts carry the card's system
    prompt, rendered as the policy saw it (kit.world.characters.Card.prompt)."""
    from .data import write_jsonl
    from .world.characters import load_cards

    params = run.manifest().get("parameters", {})
    cards = load_cards((params.get("notebook_parameters") or {}).get("cards_dir"))
    dest.mkdir(parents=True)
    counts = {}

    def prompt(rec: dict, history: list[dict]) -> list[dict]:
        if rec.get("character_id") not in cards:
            raise KitError(f"{run.root}: character {rec.get('character_id')!r} is not in the cast the run used")
        return cards[rec["character_id"]].prompt(history, rec.get("user_name"))

    sft = [{"messages": prompt(r, r["prompt"]) + [{"role": "assistant", "content": r["completion"][0]["content"]}],
            "character_id": r["character_id"], "origin": r.get("origin"), "generation": g}
           for g, r in _records(run, generation, "policy.rs.sft_data")]
    for name, split in (("preferences_train", "train_pairs"), ("preferences_eval", "eval_pairs")):
        pairs = [{"prompt": prompt(p, p["prompt"]), "chosen": p["chosen"], "rejected": p["rejected"],
                  "character_id": p["character_id"], "agreement": p.get("agreement"), "n_raters": p.get("n_raters"),
                  "origin": p.get("origin"), "generation": g}
                 for g, p in _records(run, generation, f"annotation.{split}")]
        write_jsonl(dest / f"{name}.jsonl", pairs)
        counts[name] = len(pairs)
    traffic = [dict({k: v for k, v in r.items() if k != "hidden"}, generation=g)
               for g, r in _records(run, generation, "traffic.conversations")]
    counts["sft"] = len(sft)
    counts["traffic"] = len(traffic)
    write_jsonl(dest / "sft.jsonl", sft)
    write_jsonl(dest / "traffic.jsonl", traffic)
    return counts


# ---------------------------------------------------------------------------------------------- the model card
def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _lift(m: dict) -> str:
    lo, hi = m["ci95"]
    return f"{m['lift']:+.1%} [{lo:+.1%}, {hi:+.1%}]"


def model_card(run: Run, generation: int, adapter, what: str, counts: dict, *, merged: bool) -> str:
    """The model card, every figure read from the run (manifest.json and the stages' metrics.json)."""
    manifest = run.manifest()
    params = manifest.get("parameters", {})
    status = manifest.get("generations", {}).get(str(generation), {})
    base = portable_base(params.get("model_name", DEFAULT_MODEL))
    read = lambda stage, sub=None: run.read_metrics(generation, stage, sub) if run.has_metrics(generation, stage, sub) \
        else {}  # noqa: E731
    stage = status.get("candidate_stage", "?")
    version = manifest.get("versions", {}).get("characterflywheel-kit")
    lines = ["---", f"base_model: {base}", "library_name: transformers", "tags:", "- characterflywheel-kit",
             "- role-play", "- lora", "---", "",
             f"# {base.split('/')[-1]}, CharacterFlywheel generation {generation} ({what})", "",
             f"Trained by the CharacterFlywheel notebook kit (version {version or 'unknown'}, "
             f"commit {manifest.get('git_commit') or 'unknown'}) from `{base}`: rejection sampling + SFT, then "
             f"the DPO patch and online RL; the last stage trained was **{stage}**. "
             + ("This folder is the merged model; `adapter/` holds the LoRA adapter." if merged else
                "This export holds the LoRA adapter in `adapter/`."), ""]
    if params.get("model_name", DEFAULT_MODEL) in PORTABLE_NAMES:
        lines += [f"The kit trained on `{base}` as shipped in a GGUF file (Q4_1) and dequantised to float32. The "
                  "merged weights here are exact; the adapter applied to the original Hub weights meets a base "
                  "that differs from its training base by that quantisation error.", ""]
    lines += ["## Settings", "",
              f"- profile `{params.get('profile')}`, seed {params.get('seed')}, scenario `{params.get('scenario')}`,"
              f" {params.get('generations')} generation(s) run",
              f"- notebook parameters: `{json.dumps(params.get('notebook_parameters') or {})}`"]
    sft = read("policy", "sft")
    if sft.get("config"):
        c = sft["config"]
        lines.append(f"- SFT: {c.get('sft_epochs')} epochs at lr {c.get('sft_lr')}, LoRA r={c.get('sft_lora_r')} on "
                     f"the top {c.get('sft_lora_layers') or 'all'} layers")
    rl = read("policy", "rl").get("training") or {}
    if rl:
        lines.append(f"- RL: {rl.get('algorithm')}, loss type {rl.get('loss_type')}, beta {rl.get('beta')}")
    lines += ["", "## Data", ""]
    traffic, annotation, rs = read("traffic"), read("annotation"), read("policy", "rs")
    if traffic:
        lines.append(f"- traffic of generation {generation}: {traffic.get('conversations')} conversations from "
                     f"`{traffic.get('source', 'world')}`, personal data redacted")
    if annotation:   # evaluation pairs counted from the dataset: imported labels replace the simulated ones
        consensus = len(_records(run, generation, "annotation.eval_consensus", accumulate=False))
        lines.append(f"- preference labels: {annotation.get('train_pairs')} training pairs from "
                     f"`{annotation.get('labels', 'simulated raters')}`, {consensus} consensus evaluation pairs")
    if rs:
        lines.append(f"- SFT set: {rs.get('sft_set')} examples ({rs.get('sft_examples')} new this generation)")
    if counts:
        lines.append("- exported in `datasets/`: " + ", ".join(f"{k}.jsonl ({v})" for k, v in counts.items()))
    if not (params.get("notebook_parameters") or {}).get("traffic_path"):
        lines.append("- the traffic, users and raters are the kit's **synthetic world**: no real user wrote or "
                     "judged any of it")
    lines += ["", "## Measured results", ""]
    ev, ab = read("eval"), read("ab")
    if sft.get("held_out"):
        h = sft["held_out"]
        lines.append(f"- SFT vs the base model on {h.get('sft', {}).get('replies')} held-out prompts: instruction "
                     f"following {_pct(h.get('base', {}).get('instruction_following_rate'))} -> "
                     f"{_pct(h.get('sft', {}).get('instruction_following_rate'))}")
    if ev:
        pw = ev["win_rate"].get("pointwise", {})
        lines += [f"- offline, against the policy deployed then: instruction following "
                  f"{_pct(ev['deployed'].get('instruction_following_rate'))} -> "
                  f"{_pct(ev['instruction_following_rate'])},"
                  f" violation rate {_pct(ev['deployed'].get('violation_rate'))} -> {_pct(ev['violation_rate'])}, "
                  f"reward-model win rate {_pct(pw.get('user'))} (user prompts) / {_pct(pw.get('internal'))} "
                  f"(internal)",
                  f"- the gate: {'pass' if ev['gate']['promote'] else 'BLOCK'} ({'; '.join(ev['gate']['reasons'])})"]
    if ab:
        lines.append(f"- A/B test ({ab.get('source', 'world')}, {ab['exposed']['control']} control / "
                     f"{ab['exposed']['treatment']} treatment users): breadth {_lift(ab['breadth'])}, depth "
                     f"{_lift(ab['depth'])}, SRM p = {ab['srm_p_value']:.2g}")
    if status.get("decision"):
        lines.append(f"- decision: {'promoted' if status.get('promoted') else 'not promoted'} "
                     f"({'; '.join(status['decision']['reasons'])})")
    if len(lines) and lines[-1] == "":
        lines.append("- no stage recorded results for this generation")
    lines += ["", "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
              "", "model = AutoModelForCausalLM.from_pretrained(\"PATH\")",
              "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")",
              "messages = [{\"role\": \"system\", \"content\": \"You are ...\"},",
              "            {\"role\": \"user\", \"content\": \"hi!\"}]",
              "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\",",
              "                                       return_dict=True)",
              "out = model.generate(**inputs, max_new_tokens=64)",
              "print(tokenizer.decode(out[0][inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))", "```", "",
              "The adapter alone: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("
              f"\"{base}\"), \"PATH/adapter\")`. GGUF: not written here; Unsloth's `save_pretrained_gguf` on a CUDA "
              "GPU converts the merged folder.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the Hub
def check_repo(repo) -> str:
    if not isinstance(repo, str) or repo.count("/") != 1 or not all(p.strip() for p in repo.split("/")):
        raise ParameterError("push_to_hub", "a Hub repository id, owner/name", repo)
    return repo


def push_to_hub(folder, repo: str, *, private: bool = True, api=None) -> str:
    """Upload an export folder (the merged model and adapter/, never datasets/) to the Hub repository `repo`,
    created private unless asked otherwise. `api`: a huggingface_hub.HfApi (tests pass a fake). Returns its URL."""
    check_repo(repo)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id=repo, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo, ignore_patterns=["datasets/*", "datasets/**"],
                      commit_message="CharacterFlywheel kit export")
    return f"https://huggingface.co/{repo}"


__all__ = ["export", "choose", "portable_base", "write_datasets", "model_card", "check_repo", "push_to_hub"]
