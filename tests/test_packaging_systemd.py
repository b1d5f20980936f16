"""The systemd user unit of the daemon (packaging/systemd): the installer writes unit and settings,
and the unit's ExecStart line, run as systemd would run it, starts `nightgrade serve`."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NIGHTGRADE = Path(sys.executable).parent / "nightgrade"


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return values


def test_installer_writes_unit_and_settings_and_exec_start_runs_nightgrade(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": ""}
    done = subprocess.run(["sh", str(ROOT / "packaging/systemd/install-user-service.sh"), str(NIGHTGRADE)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / ".config/systemd/user/nightgrade.service").read_text()
    # the unit's Documentation= names a file the installer put there (issue 19 item 11)
    documentation = re.search(r"^Documentation=file://%h/(.*)$", unit, re.M).group(1)
    assert "running the nightgrade daemon as a service" in (tmp_path / documentation).read_text().lower()
    settings = _env_file(tmp_path / ".config/nightgrade/daemon.env")
    assert settings["NIGHTGRADE"] == str(NIGHTGRADE)
    assert settings["NIGHTGRADE_SERVE_ARGS"] == "--bind tcp://127.0.0.1:5557"

    # ExecStart as systemd runs it: "$$" becomes "$", the settings are in the environment.
    exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).replace("$$", "$")
    argv = shlex.split(exec_start)
    assert argv[:2] == ["/bin/sh", "-c"]
    run = subprocess.run(argv, env={**env, **settings, "NIGHTGRADE_SERVE_ARGS": "--help"},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "usage: nightgrade serve" in run.stdout

    again = subprocess.run(["sh", str(ROOT / "packaging/systemd/install-user-service.sh"), str(NIGHTGRADE)],
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0  # a reinstall keeps the user's settings
    assert _env_file(tmp_path / ".config/nightgrade/daemon.env") == settings


def test_installer_refuses_a_missing_executable(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(["sh", str(ROOT / "packaging/systemd/install-user-service.sh"), str(tmp_path / "nope")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no nightgrade executable" in done.stderr
    assert not (tmp_path / ".config/systemd").exists()
