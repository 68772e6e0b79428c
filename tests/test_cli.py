import subprocess
import sys


def test_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "kit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "flywheel" in out and "samples" in out


def test_bad_profile_is_a_clear_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "kit", "flywheel", "--run-dir", str(tmp_path), "--profile", "huge"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "parameter 'profile'" in res.stderr
