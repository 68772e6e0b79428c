import json
import subprocess
import sys
from pathlib import Path

from kit.cli import main

GOOD_CONVERSATIONS = Path(__file__).parents[1] / "data_samples" / "conversations.jsonl"


USER = Path(__file__).parent / "user_files"


def test_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "kit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "flywheel" in out and "samples" in out and "export" in out and "train" in out
    fly = subprocess.run([sys.executable, "-m", "kit", "flywheel", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "{tiny,cpu,gpu,auto}" in fly and "{none,overfit,emoji,single_rater,off_policy}" in fly


def test_notebook_parameters_from_the_command_line_and_a_file(tmp_path):
    from kit.cli import notebook_parameters, parse_param

    assert parse_param("sft_lr=1e-3") == ("sft_lr", 0.001) and parse_param("run_dpo=false") == ("run_dpo", False)
    assert parse_param("traffic_path=logs/a.jsonl") == ("traffic_path", "logs/a.jsonl")
    assert parse_param('ab_arms={"A": "control"}') == ("ab_arms", {"A": "control"})
    (tmp_path / "p.yaml").write_text("sft_lr: 1e-3\ncards_dir: my_cards\nab_split: {control: 0.9, treatment: 0.1}\n")
    (tmp_path / "p.json").write_text('{"sft_lr": 0.002, "run_dpo": false}')
    assert notebook_parameters(str(tmp_path / "p.yaml"), ["cards_dir=other"]) == {
        "sft_lr": 0.001, "cards_dir": "other", "ab_split": {"control": 0.9, "treatment": 0.1}}
    assert notebook_parameters(str(tmp_path / "p.json"), []) == {"sft_lr": 0.002, "run_dpo": False}


def test_bad_profile_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "kit", "flywheel", "--run-dir", str(tmp_path), "--profile", "huge"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "parameter 'profile'" in res.stderr


def test_clean_notebooks_clears_outputs(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": "1+1", "metadata": {}, "execution_count": 3,
                     "outputs": [{"output_type": "execute_result", "data": {"text/plain": "2"}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    out = subprocess.run([sys.executable, "-m", "kit", "clean-notebooks", str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("cleaned")
    cell = json.loads(path.read_text())["cells"][0]
    assert cell["outputs"] == [] and cell["execution_count"] is None


def _cli_cases(tmp: Path) -> list[tuple[list[str], str]]:
    a_file = tmp / "a_file.txt"
    a_file.write_text("not a folder")
    busy = tmp / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("mine")
    run = str(tmp / "run")
    cell = {"cell_type": "code", "source": "1", "metadata": {}, "execution_count": 1, "outputs": []}
    (tmp / "with_outputs.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                        "nbformat_minor": 4}))
    (tmp / "list.yaml").write_text("- sft_lr\n")
    (tmp / "broken.yaml").write_text("sft_lr: [1\n")
    done = tmp / "done"
    done.mkdir()
    (done / "manifest.json").write_text(json.dumps({"generations": {"0": {"candidate_adapter": None}}}))
    return [
        (["flywheel", "--run-dir", run, "-p", "sft_lrr=1"], "parameter 'sft_lrr': expected a parameter of one of the "
                                                              "notebooks (did you mean sft_lr?)"),
        (["flywheel", "--run-dir", run, "-p", "sft_lr"], "parameter 'param': expected KEY=VALUE"),
        (["flywheel", "--run-dir", run, "-p", "seed=3"], "parameter 'seed': expected a flag of the command"),
        (["flywheel", "--run-dir", run, "-p", "sft_lr=-1"], "parameter 'sft_lr': expected a number > 0"),
        (["flywheel", "--run-dir", run, "-p", "run_dpo=no"], "parameter 'run_dpo': expected a bool"),
        (["flywheel", "--run-dir", run, "-p", f"traffic_path={tmp / 'none.jsonl'}"], "no such file"),
        (["flywheel", "--run-dir", run, "-p", f"cards_dir={tmp / 'nowhere'}"], "no such folder"),
        (["flywheel", "--run-dir", run, "-p", f"labels_path={USER / 'preferences_trl.jsonl'}"],
         "preferences_trl.jsonl:1: field 'character_id': expected one of the cast"),
        (["flywheel", "--run-dir", run, "-p", f"ab_log_path={USER / 'ab_log_90_10.jsonl'}"], ":1: field 'arm'"),
        (["flywheel", "--run-dir", run, "--params", str(tmp / "list.yaml")], "list.yaml: expected one object"),
        (["flywheel", "--run-dir", run, "-p", 'ab_split={"control": 0.9}'], "parameter 'ab_split'"),
        (["flywheel", "--run-dir", run, "-p", "report_to=wandb"], "parameter 'report_to'"),
        (["flywheel", "--run-dir", run, "--params", str(tmp / "broken.yaml")], "broken.yaml:2: expected YAML ("),
        (["flywheel", "--run-dir", run, "--params", str(tmp / "missing.yaml")], "no such file"),
        (["export", str(tmp / "nowhere")], "parameter 'run_dir'"),
        (["export", str(done)], "no generation was promoted"),
        (["export", str(done), "--generation", "3"], "parameter 'generation'"),
        (["export", str(done), "--push-to-hub", "no-owner"], "parameter 'push_to_hub'"),
        (["train", "sft", "--run-dir", str(tmp / "nowhere"), "--generation", "0"], "no manifest.json"),
        (["train", "ppo", "--run-dir", str(done), "--generation", "0"], "invalid choice: 'ppo'"),
        (["flywheel", "--run-dir", run, "--generations", "-1"], "parameter 'generations'"),
        (["flywheel", "--run-dir", run, "--generations", "0"], "parameter 'generations'"),
        (["flywheel", "--run-dir", run, "--generations", str(10**9)], "parameter 'generations'"),
        (["flywheel", "--run-dir", run, "--generations", "two"], "invalid int value"),
        (["flywheel", "--run-dir", run, "--seed", "-1"], "parameter 'seed'"),
        (["flywheel", "--run-dir", run, "--seed", str(2**32)], "parameter 'seed'"),
        (["flywheel", "--run-dir", run, "--model", ""], "parameter 'model_name'"),
        (["flywheel", "--run-dir", run, "--model", " smollm2-135m-instruct"], "parameter 'model_name'"),
        (["flywheel", "--run-dir", run, "--model", "./no/such/model"], "parameter 'model_name'"),
        (["flywheel", "--run-dir", run, "--generation", "2"], "unrecognized arguments: --generation"),
        (["flywheel", "--run-dir", run, "--profile", "huge"], "parameter 'profile'"),
        (["flywheel", "--run-dir", run, "--scenario", "nope"], "parameter 'scenario'"),
        (["flywheel", "--run-dir", str(a_file)], "parameter 'run_dir'"),
        (["flywheel", "--run-dir", str(busy)], "parameter 'run_dir'"),
        (["flywheel", "--run-dir", ""], "parameter 'run_dir'"),
        (["samples", "--out", str(a_file)], "parameter 'out'"),
        (["samples", "--out", str(tmp / "s"), "--seed", "-1"], "parameter 'seed'"),
        (["clean-notebooks", str(tmp / "missing.ipynb")], "no such file"),
        (["clean-notebooks", str(a_file)], "a notebook's JSON"),
        (["clean-notebooks", str(tmp / "with_outputs.ipynb"), str(a_file)], "a notebook's JSON"),   # none rewritten
        (["steerability", str(GOOD_CONVERSATIONS), "--cards", str(tmp / "nowhere")], "no such folder"),
        (["steerability", str(GOOD_CONVERSATIONS), "--cards", str(a_file)], "got a file"),
        (["steerability"], "the following arguments are required"),
    ]


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    def snapshot():
        return {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}

    for argv, expect in _cli_cases(tmp_path):
        before = snapshot()
        try:
            code = main(argv)
        except SystemExit as exc:   # argparse's own errors (a word where a number goes, an unknown option)
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and expect in err and "Traceback" not in err, (argv, err)
        assert snapshot() == before, argv


def test_method_map_prints_the_table_and_rewrites_it_between_markers(tmp_path, capsys):
    from kit.method import MARKERS, render_map

    assert main(["method-map"]) == 0
    assert capsys.readouterr().out == render_map() + "\n"
    readme = tmp_path / "README.md"
    readme.write_text(f"# Kit\n\n{MARKERS[0]}\nstale\n{MARKERS[1]}\nrest\n", encoding="utf-8")
    assert main(["method-map", "--write", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == f"# Kit\n\n{MARKERS[0]}\n{render_map()}\n{MARKERS[1]}\nrest\n"
    readme.write_text("# no markers\n", encoding="utf-8")
    assert main(["method-map", "--write", str(readme)]) == 2
    assert "expected one <!-- method-map -->" in capsys.readouterr().err
    assert readme.read_text(encoding="utf-8") == "# no markers\n"
