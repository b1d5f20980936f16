"""Set-up (issue 19 item 9): `make demo` installs the runtime only, `make test` and `make farm` add
their extras; every install step prints one progress line and a failure shows pip's last lines."""
from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "setup-venv.sh"


def _planned(target: str) -> list[str]:
    done = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if "setup-venv.sh" in line]


def test_demo_installs_no_farm_or_test_extras_and_test_and_farm_do() -> None:
    assert [line.split()[1:] for line in _planned("demo")] == [["python3", ".venv"]]
    assert [line.split()[3:] for line in _planned("test")] == [[], ["dev"]]
    assert [line.split()[3:] for line in _planned("farm")] == [[], ["farm,ray"]]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    runtime = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "ray" not in runtime and "openjd" not in runtime and "pytest" not in runtime
    assert "onnxruntime" not in runtime and "openvino" not in runtime  # optional backends: the onnx extra
    assert "nightgrade[train,data,farm,ray,onnx]" in extras["dev"]


def test_each_step_prints_one_line_and_a_failure_shows_the_log(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"  # a venv whose pip fails: the step must say so, with pip's own words
    fake.write_text("#!/bin/sh\necho 'ERROR: no matching distribution for nightgrade[nope]' >&2\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run([str(SCRIPT), "python3", str(venv), "nope"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=os.environ)
    assert done.returncode == 1
    assert done.stdout.strip() == "[setup 1/1] extras [nope] (nope) ... FAILED"
    assert "no matching distribution" in done.stderr and "setup.log" in done.stderr
