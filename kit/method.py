"""The method, step by step: the one table the kit reads to know which notebook, module, config and artifacts serve
each step of CharacterFlywheel.

Steps are numbered as the paper's summary numbers them (PAPER.md, "One turn of the loop"): 1 data curation,
2 annotation, 3 reward models, 4 policy training, 5 style-artifact control, 6 offline evaluation, 7 online
evaluation. Policy training is three stages of its own, so step 4 is split in the order they run: 4a rejection
sampling and SFT, 4b the DPO patch, 4c online RL. Notebooks 00, 01 and 08 are no step: they stand around the loop
(the quickstart, the world tour before it, the trajectory after it).

What reads the table:

* the flywheel's order (kit.notebooks: SETUP_NOTEBOOKS, STAGE_NOTEBOOKS, FINAL_NOTEBOOKS);
* each notebook's opening line, "**Step N of the method:** ..." (`heading`), and each step module's docstring,
  "(step N of the method)": tests/test_method.py checks that they say what the table says;
* the README's map of step -> notebook -> module -> artifacts (`render_map`, between the README's
  `<!-- method-map -->` markers; `python -m kit method-map --write README.md` rewrites it there).

Artifacts are named by their path under gen_<g>/ (kit.paths.ARTIFACTS, resolved by `Run.artifact`), so a notebook
says `run.artifact(generation, "annotation.candidates")` and never spells out the folders.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .config import (ABConfig, CurationConfig, EvalConfig, GenerationConfig, PolicyConfig, RewardModelConfig,
                     WorldConfig)
from .errors import KitError
from .paths import RUN_FILES, artifact_path


@dataclass(frozen=True)
class Step:
    """One row: a step of the method (`number` as in PAPER.md, 4a-4c inside step 4), or a notebook around the loop
    (`number` None). `runs`: when the flywheel runs its notebook: "before" the first generation, every
    "generation", "after" the last, or "alone" (never: it is run by hand). `modules` are names inside kit/,
    `folders` are the step's folders under gen_<g>/, `reads` and `writes` are artifact names (kit.paths)."""
    number: str | None
    name: str
    notebooks: tuple[str, ...]
    modules: tuple[str, ...]
    config: type | None
    folders: tuple[str, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    runs: str = "generation"


SIGNAL_MODELS = ("rewards.signals.continue", "rewards.signals.thumb_up")
HELD_OUT = ("curation.eval_prompts", "world.eval_prompts")   # every generation's held-out checks draw from both

STEPS: tuple[Step, ...] = (
    Step(None, "quickstart: the model and one character", ("00_quickstart",), ("sampling", "models"),
         GenerationConfig, ("world",), reads=(), writes=("world.quickstart.json",), runs="alone"),
    Step(None, "a tour of the synthetic world", ("01_world",), ("world_tour", "world"), WorldConfig, ("world",),
         reads=(), writes=("world.sessions.jsonl", "world.eval_prompts", "world.metrics.json"), runs="before"),
    Step("1", "data curation", ("02_curation",), ("privacy", "curation"), CurationConfig, ("traffic", "curation"),
         reads=("manifest.json",),
         writes=("traffic.conversations", "traffic.conversations.jsonl", "traffic.metrics.json",
                 "curation.train_prompts", "curation.eval_prompts", "curation.metrics.json")),
    Step("2", "annotation", ("02_curation",), ("annotation",), CurationConfig, ("annotation",),
         reads=("curation.train_prompts", "curation.eval_prompts", "manifest.json"),
         writes=("annotation.train_pairs", "annotation.eval_pairs", "annotation.eval_consensus",
                 "annotation.eval_single_rater", "annotation.ratings", "annotation.candidates",
                 "annotation.metrics.json")),
    Step("3", "reward models", ("03_reward_models",), ("rewards",), RewardModelConfig, ("rewards",),
         reads=("annotation.train_pairs", "annotation.eval_pairs", "annotation.eval_consensus",
                "annotation.eval_single_rater", "curation.train_prompts", "curation.eval_prompts"),
         writes=("rewards.pointwise", "rewards.pairwise") + SIGNAL_MODELS + ("rewards.metrics.json",)),
    Step("4a", "rejection sampling and SFT", ("04_sft",), ("rejection", "sft"), PolicyConfig,
         ("policy/rs", "policy/sft"),
         reads=("annotation.candidates", "annotation.train_pairs", "rewards.pointwise") + SIGNAL_MODELS + HELD_OUT,
         writes=("policy.rs.prompts", "policy.rs.candidates", "policy.rs.sft_data", "policy.rs.metrics.json",
                 "policy.sft.adapter", "policy.sft.merged", "policy.sft.metrics.json", "manifest.json")),
    Step("4b", "the DPO patch", ("05_dpo_rl",), ("dpo",), PolicyConfig, ("policy/dpo",),
         reads=("policy.sft.adapter", "policy.rs.prompts", "policy.rs.candidates", "annotation.train_pairs"),
         writes=("policy.dpo.adapter", "policy.dpo.metrics.json")),
    Step("4c", "online RL", ("05_dpo_rl",), ("rl",), PolicyConfig, ("policy/rl",),
         reads=("policy.dpo.adapter", "policy.sft.adapter", "policy.rs.prompts", "policy.rs.candidates",
                "rewards.pointwise") + SIGNAL_MODELS + HELD_OUT,
         writes=("policy.rl.adapter", "policy.rl.metrics.json", "manifest.json")),
    Step("5", "style-artifact control", ("03_reward_models", "04_sft"), ("style_artifacts",), RewardModelConfig,
         ("rewards", "policy/rs"), reads=("annotation.train_pairs", "policy.rs.candidates"),
         writes=("rewards.metrics.json", "policy.rs.metrics.json")),
    Step("6", "offline evaluation and the gate", ("06_offline_eval",), ("evaluation",), EvalConfig, ("eval",),
         reads=("manifest.json", "rewards.pointwise", "rewards.pairwise") + HELD_OUT,
         writes=("eval.metrics.json", "manifest.json")),
    Step("7", "the A/B test and the promotion decision", ("07_ab_test",), ("abtest", "evaluation"), ABConfig,
         ("ab",), reads=("manifest.json",), writes=("ab.events.jsonl", "ab.metrics.json", "manifest.json")),
    Step(None, "the flywheel, generation after generation", ("08_flywheel",), ("flywheel",), None, (),
         reads=("manifest.json", "eval.metrics.json", "ab.metrics.json"), writes=(), runs="after"),
)
RUNS = ("alone", "before", "generation", "after")


def step(number: str) -> Step:
    for s in STEPS:
        if s.number == number:
            return s
    raise KitError(f"no step {number!r} in the method; the steps are {', '.join(s.number for s in method_steps())}")


def method_steps() -> tuple[Step, ...]:
    """The numbered steps, in the method's order."""
    return tuple(s for s in STEPS if s.number is not None)


def notebooks(runs: str) -> tuple[str, ...]:
    """The notebooks the flywheel runs `runs` ("before", "generation", "after"; "alone": never), each once, in
    the order of the table (a notebook serving several steps comes where its first step does)."""
    if runs not in RUNS:
        raise KitError(f"runs={runs!r}: expected one of {', '.join(RUNS)}")
    return tuple(dict.fromkeys(nb for s in STEPS if s.runs == runs for nb in s.notebooks))


def steps_of(notebook: str) -> tuple[Step, ...]:
    """The numbered steps a notebook serves, in the method's order (none for 00, 01, 08)."""
    return tuple(s for s in method_steps() if notebook in s.notebooks)


def steps_in(module: str) -> tuple[Step, ...]:
    """The numbered steps a kit module serves ("rejection" -> 4a)."""
    return tuple(s for s in method_steps() if module in s.modules)


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def numbers(steps) -> str:
    """"Step 6", "Steps 4b and 4c", "Steps 1, 2 and 3"."""
    steps = list(steps)
    return ("Step " if len(steps) == 1 else "Steps ") + _and([s.number for s in steps])


def heading(notebook: str) -> str | None:
    """The line a step notebook's opening starts with: "**Steps 4b and 4c of the method:** the DPO patch; online
    RL." None for a notebook that is no step."""
    steps = steps_of(notebook)
    if not steps:
        return None
    return f"**{numbers(steps)} of the method:** {'; '.join(s.name for s in steps)}."


# "step 4a of the method", "steps 1 and 2 of the method", "Steps 3, 4a and 5 of the method"
CLAIM = re.compile(r"\b[Ss]teps? (\d[a-c]?(?:(?:, | and )\d[a-c]?)*) of the method")


def claimed_steps(text: str) -> set[str]:
    """The step numbers a docstring or a notebook's opening claims ("steps 1 and 2 of the method" -> {1, 2})."""
    return {n for m in CLAIM.finditer(text or "") for n in re.split(r", | and ", m.group(1))}


# ---------------------------------------------------------------------------------------------- the README's map
MARKERS = ("<!-- method-map -->", "<!-- /method-map -->")


def _where(name: str) -> str:
    return name if name in RUN_FILES else artifact_path(name)


def _artifacts(names) -> str:
    """Artifact paths grouped by folder: `annotation/{train_pairs, candidates}`, `manifest.json`."""
    groups: dict[str, list[str]] = {}
    for name in names:
        folder, _, file = _where(name).rpartition("/")
        groups.setdefault(folder, []).append(file)
    return ", ".join(f"`{files[0]}`" if not folder else f"`{folder}/{files[0]}`" if len(files) == 1
                     else f"`{folder}/{{{', '.join(files)}}}`" for folder, files in groups.items())


def _module(name: str) -> str:
    return f"`kit/{name}/`" if name == "world" else f"`kit/{name.replace('.', '/')}.py`"


WHEN = {"alone": "start here", "before": "once, before", "after": "once, after"}


def render_map() -> str:
    """The map of the method as markdown: step -> notebook -> kit modules -> config -> artifacts read and written.
    The README carries it verbatim between MARKERS (tests/test_method.py checks it)."""
    order = [s for r in ("alone", "before") for s in STEPS if s.runs == r] + list(method_steps()) + \
        [s for s in STEPS if s.runs == "after"]
    lines = ["| step | notebook | kit | config | reads | writes |", "| --- | --- | --- | --- | --- | --- |"]
    for s in order:
        label = f"**{s.number}** {s.name}" if s.number else f"({WHEN[s.runs]}) {s.name}"
        lines.append(" | ".join(["", label, ", ".join(f"`{nb}`" for nb in s.notebooks),
                                 ", ".join(_module(m) for m in s.modules),
                                 f"`{s.config.__name__}`" if s.config else "-", _artifacts(s.reads) or "cards",
                                 _artifacts(s.writes) or "nothing", ""]).strip())
    return "\n".join([
        "Artifacts are under `<run_dir>/gen_<g>/` and named by their path (`run.artifact(g, "
        "\"annotation.candidates\")`); `manifest.json` is the run's. Step numbers are the paper's; 4a-4c split its "
        "step 4, policy training.", "", *lines])


def with_map(text: str, where: str = "the text") -> str:
    """`text` (the README) with the rendered map between its MARKERS; `where` names it in an error."""
    start, end = MARKERS
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise KitError(f"{where}: expected one {start} line and one {end} after it, around the method's map")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{render_map()}\n{end}{tail}"
