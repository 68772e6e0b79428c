"""bench/rl_variants.py and bench/utility_terms.py: where RL starts from, and the committed tables are what their
JSON says."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from kit.errors import KitError
from kit.paths import Run

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))   # it reads --variant as bench/sft_variants.py does
    try:
        spec = importlib.util.spec_from_file_location("rl_variants", ROOT / "bench" / "rl_variants.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def test_rl_starts_from_the_dpo_adapter_else_the_sft_adapter(tmp_path):
    bench = _bench()
    run = Run(tmp_path / "run")
    with pytest.raises(KitError, match="no DPO or SFT adapter"):
        bench.start_adapter(run, 0)
    sft = Path(run.artifact(0, "policy.sft.adapter"))
    sft.mkdir(parents=True, exist_ok=True)
    (sft / "adapter_config.json").write_text("{}")
    assert bench.start_adapter(run, 0) == sft
    dpo = Path(run.artifact(0, "policy.dpo.adapter"))
    dpo.mkdir(parents=True, exist_ok=True)
    (dpo / "adapter_config.json").write_text("{}")
    assert bench.start_adapter(run, 0) == dpo


@pytest.mark.parametrize("name", ["rl_length_seed2", "rl_unfinished_seed2", "rl_unfinished_seed1", "rl_follow_seed2",
                                  "rl_follow_seed1", "rl_steps8_seed2", "rl_pair_filter_seed0", "rl_pair_filter_seed2",
                                  "rl_pair_filter_seed1_gen1"])
def test_committed_tables_render_from_their_json(name):
    bench = _bench()
    result = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())
    committed = (ROOT / "bench" / "results" / f"{name}.md").read_text()
    assert sorted(bench.markdown(result).splitlines()) == sorted(committed.splitlines())   # JSON keys are sorted
    for variant in result["variants"].values():
        assert {"hidden_utility", "reward", "following"} <= set(variant["held_out"]["vs_start"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_committed_utility_terms_render_from_their_json_and_add_up(seed):
    spec = importlib.util.spec_from_file_location("utility_terms", ROOT / "bench" / "utility_terms.py")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    name = f"utility_terms_seed{seed}"
    result = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())
    assert sorted(module.markdown(result).splitlines()) == sorted(
        (ROOT / "bench" / "results" / f"{name}.md").read_text().splitlines())
    run = json.loads((ROOT / "docs" / "results" / f"cpu-seed{seed}" / "gen_0" / "policy" / "rl" / "metrics.json")
                     .read_text())
    for stage in ("start", "rl"):   # the same replies as notebook 05's held-out check
        assert result["policies"][stage]["utility"] == pytest.approx(run["held_out"][stage]["hidden_utility"])
