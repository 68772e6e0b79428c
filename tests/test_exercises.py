"""The notebooks' "Try this" exercises whose expected observation holds by construction at the tiny profile: each is
run as the exercise says (the notebook again, on a copy of a finished run, with the changed parameter) and its
observation checked."""
import json
import shutil

import pytest

from kit.notebooks import execute, notebook_path
from kit.paths import Run


def _copy(tiny_flywheel, tmp_path) -> Run:
    dest = tmp_path / "try"
    shutil.copytree(tiny_flywheel.root, dest)
    return Run(dest)


def _exercise_text(name: str) -> str:
    nb = json.loads(notebook_path(name).read_text())
    return "".join(nb["cells"][-1]["source"])


@pytest.mark.slow
def test_one_rater_leaves_no_consensus_split(tiny_flywheel, tmp_path):
    assert "-p n_raters 1" in _exercise_text("02_curation") and "`consensus_pairs` 0" in _exercise_text("02_curation")
    run = _copy(tiny_flywheel, tmp_path)
    execute("02_curation", run, 0, dict(run_dir=str(run.root), generation=0, profile="tiny", seed=0, n_raters=1),
            progress=False, output_name="02_curation_exercise")
    metrics = run.read_metrics(0, "annotation")
    assert metrics["consensus_pairs"] == 0 and metrics["consensus_share"] == 0
    assert tiny_flywheel.read_metrics(0, "annotation")["consensus_pairs"] > 0, "the run it copies had a consensus split"


@pytest.mark.slow
def test_no_rater_fixes_and_no_rewrites_leave_only_the_models_own_replies(tiny_flywheel, tmp_path):
    text = _exercise_text("04_sft")
    assert "-p rs_rater_fix False" in text and "-p sft_include_rewrites False" in text
    run = _copy(tiny_flywheel, tmp_path)
    execute("04_sft", run, 0, dict(run_dir=str(run.root), generation=0, profile="tiny", seed=0, rs_rater_fix=False,
                                   sft_include_rewrites=False), progress=False, output_name="04_sft_exercise")
    origins = run.read_metrics(0, "policy", sub="rs")["sft_origins"]
    assert origins and not any(o.endswith("+rater-fix") or o == "rater-rewrite" for o in origins)



def test_the_cut_samples_exercise_names_parameters_notebook_05_passes_to_its_config():
    """Exercises 5 and 6 of notebook 05 (what the options do is tested in tests/test_rl.py, without a notebook run)."""
    from kit.notebooks import parameters_of

    text = _exercise_text("05_dpo_rl")
    assert "-p rl_unfinished_penalty 1.0 -p rl_mask_truncated True" in text
    assert "-p rl_max_len_diff 40 -p rl_max_emoji_diff 2" in text   # exercise 6 (tests/test_rl.py: the pair filter)
    names = ("rl_unfinished_penalty", "rl_mask_truncated", "rl_length_weight", "rl_temperature", "rl_max_len_diff",
             "rl_max_emoji_diff")
    assert set(names) <= set(parameters_of(notebook_path("05_dpo_rl")))
    source = "".join("".join(c["source"]) for c in json.loads(notebook_path("05_dpo_rl").read_text())["cells"])
    for name in names:
        assert f"{name}={name}" in source, f"notebook 05 reads {name} but does not pass it to its config"
