"""bench/regate.py: today's gate and decision on a finished run's stored replies."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_regate_of_a_run_made_by_todays_gate_changes_no_decision(tiny_flywheel):
    """bench/regate.py on the tiny flywheel (made by today's gate): every generation's gate and decision come out
    as the run recorded them, from its stored replies; the table flags none."""
    saved = sys.path[:]
    try:
        sys.path.insert(0, str(ROOT / "bench"))
        spec = importlib.util.spec_from_file_location("regate", ROOT / "bench" / "regate.py")
        regate = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(regate)
    finally:
        sys.path[:] = saved   # regate.py puts bench/ and the repository on the path too
    rows = regate.regate(str(tiny_flywheel.root))
    assert [row["generation"] for row in rows] == [0, 1]
    for row in rows:
        assert row["now"]["gate"] == row["recorded"]["gate"] and row["now"]["promote"] == row["recorded"]["promote"]
    table = regate.markdown({"runs": rows, "command": "python bench/regate.py"})
    assert "differs" not in table and table.count("| `") == 2
