"""scripts/setup.sh and the requirement files: a GPU machine gets the CPU pins plus Unsloth, never other versions."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# torchvision releases are built for one torch release each (torchvision 0.28.0 requires torch==2.13.0)
TORCHVISION_FOR_TORCH = {"2.13.0": "0.28.0"}
UNSLOTH_CERTIFI_FLOOR = (2026, 10, 19)   # unsloth 2026.10.9 and unsloth_zoo: certifi>=2026.10.19


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_gpu_requirements_keep_the_cpu_torch_and_its_torchvision():
    """Defect 6: Unsloth pulls torchvision unpinned; its newest release needs torch 2.14 and replaced 2.13.0."""
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert gpu["torch"] == cpu["torch"]
    assert gpu["torchvision"] == TORCHVISION_FOR_TORCH[cpu["torch"]]
    assert {"unsloth", "unsloth-zoo"} <= set(gpu)
    for name, version in gpu.items():   # nothing the CPU side pins is pinned differently for the GPU
        assert pins("constraints.txt").get(name, version) == version and cpu.get(name, version) == version, name


def test_constraints_admit_unsloths_certifi():
    version = pins("constraints.txt")["certifi"]
    assert tuple(int(x) for x in version.split(".")[:3]) >= UNSLOTH_CERTIFI_FLOOR


def test_setup_installs_the_gpu_requirements_in_the_constrained_call():
    """A second, unconstrained pip call for requirements-gpu.txt could move any CPU pin."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    calls = [line for line in script.splitlines() if re.search(r"pip_quiet install .*-r ", line)]
    gpu_calls = [line for line in calls if "gpu_req" in line or "requirements-gpu.txt" in line]
    assert len(gpu_calls) == 1 and "requirements.txt" in gpu_calls[0] and "-c \"$root/constraints.txt\"" in gpu_calls[0]


def test_gpu_check_on_a_machine_without_a_gpu_says_so_and_does_nothing(tmp_path):
    """scripts/gpu_check.sh is for a CUDA machine; elsewhere it must not set up, run or write anything."""
    import shutil
    import subprocess

    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    for name in ("gpu_check.sh", "setup.sh"):
        shutil.copy(ROOT / "scripts" / name, copy / "scripts" / name)
    bin_dir = tmp_path / "bin"   # an nvidia-smi that finds no GPU, as on a machine with a driver and no card
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'No devices were found' >&2\nexit 6\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(copy / "scripts" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                          cwd=copy, timeout=60)
    assert proc.returncode != 0 and "no CUDA GPU" in proc.stderr
    assert sorted(p.name for p in copy.iterdir()) == ["scripts"]   # no .venv, no runs/, no results


def test_pyproject_declares_the_pins_of_the_requirement_files():
    """`pip install .` gets what scripts/setup.sh installs: the direct pins of requirements.txt (pytest as the test
    extra), the GPU extra of requirements-gpu.txt (torch is pinned there again only to hold it), and nothing the
    constraints pin otherwise."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def as_pins(specs):
        return {re.split("==", s)[0].lower().replace("_", "-"): s.split("==")[1] for s in specs}

    extras = project["optional-dependencies"]
    assert as_pins(project["dependencies"] + extras["test"]) == pins("requirements.txt")
    gpu = pins("requirements-gpu.txt")
    gpu.pop("torch")
    assert as_pins(extras["gpu"]) == gpu
    constraints = pins("constraints.txt")
    assert all(constraints.get(name, version) == version for name, version in as_pins(project["dependencies"]).items())
