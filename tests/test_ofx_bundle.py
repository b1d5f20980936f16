"""The portable OFX bundle (issue 18): `make bundle`'s NightGrade.ofx asks for nothing newer than
glibc 2.28 and gcc 8's libstdc++, needs no library outside the C runtime, exports only the two
OpenFX entry points, and loads and renders in our own host under AddressSanitizer/UBSan.

The first run builds libzmq/libsodium with zig (packaging/ofx/build-deps.sh, about 5 minutes on 2
cores, after fetch-sources.sh downloaded Debian's sources); later runs reuse that cache and take a
second."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ofx_fake_daemon import FakeDaemon, enhance
from ofx_host.driver import ROOT, BUNDLE_BINARY, Build, exported_symbols, frame, job_for, read_output

sys.path.insert(0, str(ROOT / "packaging" / "ofx"))
from check_portable import problems, required_versions  # noqa: E402


@pytest.fixture(scope="session")
def bundle() -> Path:
    env = dict(os.environ, PYTHON=str(Path(sys.executable)))
    done = subprocess.run([str(ROOT / "packaging" / "ofx" / "make-bundle.sh")], capture_output=True, text=True,
                          env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ROOT / "build" / "ofx-portable" / BUNDLE_BINARY


def test_bundle_needs_nothing_newer_than_the_hosts_baseline(bundle):
    assert problems(bundle) == []
    glibc = [v for v in required_versions(bundle) if v.startswith("GLIBC_")]
    assert glibc, "objdump found no glibc symbol versions: the check would pass anything"
    assert not any(v.startswith(("GLIBCXX_", "CXXABI_")) for v in required_versions(bundle))
    assert exported_symbols(bundle) == ["OfxGetNumberOfPlugins", "OfxGetPlugin"]
    assert (bundle.parents[1] / "Resources" / "com.nightgrade.NightGrade.png").is_file()


def test_the_check_names_what_the_development_build_needs(ofx):
    # The native build links the system's shared libzmq and libsodium: the check must say so.
    found = problems(ofx.plugin)
    assert any("libzmq.so.5" in p and "does not carry" in p for p in found), found
    assert any("libsodium.so" in p for p in found), found


def test_the_check_refuses_a_library_outside_the_bundle_and_a_foreign_run_path(tmp_path):
    (tmp_path / "lib.c").write_text("int f(void) { return 1; }\n")
    (tmp_path / "main.c").write_text("int f(void);\nint g(void) { return f(); }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "libextra.so", tmp_path / "lib.c"], check=True)
    plugin = tmp_path / "plugin.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", plugin, tmp_path / "main.c", "-L", tmp_path, "-lextra",
                    "-Wl,-rpath,/opt/elsewhere"], check=True)
    found = problems(plugin)
    assert any("$ORIGIN" in p and "libextra.so" in p for p in found), found
    assert any("/opt/elsewhere" in p for p in found), found


def test_bundle_renders_in_the_sanitized_host(bundle, ofx_asan, tmp_path):
    daemon = FakeDaemon().start()
    try:
        build = Build(bundle, ofx_asan.host, True)
        job = job_for(build, tmp_path, daemon.address)
        src = frame(21, 24, 32)
        job.source(1.0, 1, src)
        job.source(0.5, 1, src[::2, ::2])
        full = job.render(1.0, 1)
        half = job.render(0.5, 1)
        job.press("reconnect")
        log = job.run(timeout=120)
    finally:
        daemon.stop()
    assert log.completed(), log.stderr[-3000:]
    assert "Sanitizer" not in log.stderr and "runtime error" not in log.stderr, log.stderr[-3000:]
    assert log.render_statuses() == [0] * 4 and not log.all("VIOLATION")
    np.testing.assert_array_equal(read_output(full, src), enhance(src, np.float32(1)))
    np.testing.assert_array_equal(read_output(half, src[::2, ::2]), enhance(src[::2, ::2], np.float32(1)))
