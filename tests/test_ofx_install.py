"""packaging/ofx/install.sh (issue 18): where the bundle goes ($OFX_PLUGIN_PATH first, the per-user
folder with --user), that it replaces an old copy whole, and its one-line refusals."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ofx_host.driver import ROOT

SCRIPT = ROOT / "packaging" / "ofx" / "install.sh"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle laid out as make bundle lays it out; any loadable shared object stands in for the plug-in."""
    folder = tmp_path / "build" / "NightGrade.ofx.bundle"
    (folder / "Contents" / "Linux-x86-64").mkdir(parents=True)
    (folder / "Contents" / "Resources").mkdir()
    shutil.copy(next(Path("/lib/x86_64-linux-gnu").glob("libm.so.6")), folder / "Contents" / "Linux-x86-64" / "NightGrade.ofx")
    (folder / "Contents" / "Resources" / "com.nightgrade.NightGrade.png").write_bytes(b"icon")
    return folder


def install(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("OFX_PLUGIN_PATH", "XDG_DATA_HOME")}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env={**clean, **env}, timeout=60)


def test_the_first_folder_of_ofx_plugin_path_is_used(bundle, tmp_path):
    first, second = tmp_path / "plugins-a", tmp_path / "plugins-b"
    done = install(str(bundle), OFX_PLUGIN_PATH=f"{first}:{second}")
    assert done.returncode == 0, done.stderr
    assert (first / "NightGrade.ofx.bundle" / "Contents" / "Resources" / "com.nightgrade.NightGrade.png").is_file()
    assert not second.exists()
    assert "export OFX_PLUGIN_PATH" not in done.stdout  # already on the path
    assert [p.name for p in first.iterdir()] == ["NightGrade.ofx.bundle"]  # no staging folder left


def test_user_install_goes_to_the_per_user_folder_and_says_how_hosts_find_it(bundle, tmp_path):
    data = tmp_path / "xdg"
    done = install("--user", str(bundle), XDG_DATA_HOME=str(data))
    assert done.returncode == 0, done.stderr
    target = data / "OFX" / "Plugins" / "NightGrade.ofx.bundle"
    assert (target / "Contents" / "Linux-x86-64" / "NightGrade.ofx").is_file()
    assert f'export OFX_PLUGIN_PATH="{data}/OFX/Plugins' in done.stdout
    # A reinstall replaces the old bundle whole: a file only the old copy had is gone.
    (target / "Contents" / "stale").write_text("old")
    assert install("--user", str(bundle), XDG_DATA_HOME=str(data)).returncode == 0
    assert not (target / "Contents" / "stale").exists()
    assert install("--user", "--uninstall", XDG_DATA_HOME=str(data)).returncode == 0
    assert not target.exists()


@pytest.mark.parametrize("case,words", [("no bundle", "make bundle"), ("unwritable", "cannot write to"),
                                        ("bad option", "unknown option")])
def test_refusals_are_one_line_and_leave_nothing(bundle, tmp_path, case, words):
    if case == "no bundle":
        done = install(str(tmp_path / "missing.bundle"), OFX_PLUGIN_PATH=str(tmp_path / "dest"))
    elif case == "unwritable":
        done = install(str(bundle), OFX_PLUGIN_PATH="/proc/nightgrade-plugins")
    else:
        done = install("--system", str(bundle))
    assert done.returncode != 0
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "dest").exists()
