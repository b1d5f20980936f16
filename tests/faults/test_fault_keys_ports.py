"""Faults at start-up: bad Curve keys, a busy or impossible port, a secret key others could read.

Each command runs as a child process under a hard timeout: the bugs these catch were hangs
(a ZeroMQ context terminated while a socket was still open), which an in-process test would
turn into a stuck suite instead of a failure.
"""
from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from nightgrade.colorpipeline.errors import InputError, UsageError
from nightgrade.server.cli.main import main
from nightgrade.server.client import Client
from nightgrade.server.protocol import curve
from nightgrade.server.protocol.curve import CurveClientConfig, generate_keypair
from tests.daemon_fixtures import NIGHTGRADE, free_port

HANG_S = 40  # far above a clean start-up failure (~3 s); reaching it means a hang


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        return subprocess.run([NIGHTGRADE, *args], cwd=cwd, capture_output=True, text=True, timeout=HANG_S, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`nightgrade {' '.join(args)}` hung for {HANG_S} s instead of exiting with an error")


def _error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("nightgrade:")]
    assert len(errors) == 1, result.stderr
    assert "internal error" not in errors[0], result.stderr
    return errors[0]


@pytest.fixture()
def bad_key(tmp_path: Path) -> Path:
    path = tmp_path / "bad.key_secret"
    path.write_text("this is not a zmq certificate\n")
    return path


@pytest.mark.parametrize("command", ["status", "enhance"])
def test_client_with_a_bad_key_exits_at_once(tmp_path: Path, bad_key: Path, command: str) -> None:
    extra = ["in.exr", "out.exr", "--server", f"tcp://127.0.0.1:{free_port()}"] if command == "enhance" else []
    result = _run(command, *extra, "--curve-server-key", str(bad_key), "--curve-client-key", str(bad_key),
                  "--timeout", "1", cwd=tmp_path)
    assert result.returncode != 0
    line = _error_line(result)
    assert "bad.key_secret" in line or "in.exr" in line  # a missing input may be found first; neither hangs


def test_client_object_with_a_bad_key_raises_and_closes(bad_key: Path) -> None:
    client = Client(f"tcp://127.0.0.1:{free_port()}", timeout_s=0.2, retries=0,
                    curve=CurveClientConfig(bad_key, bad_key))
    with pytest.raises(InputError, match="bad.key_secret"):
        client.ping()
    client.close()  # hung forever before the fix: the socket stayed open under the context
    assert client._context.closed


def test_serve_with_a_bad_key_exits_at_once(tmp_path: Path, bad_key: Path, tiny_weights: str) -> None:
    (tmp_path / "clients").mkdir()
    result = _run("serve", "--weights", tiny_weights, "--device", "cpu", "--curve-secret-key", str(bad_key),
                  "--curve-authorized-keys", str(tmp_path / "clients"), cwd=tmp_path)
    assert result.returncode == InputError.exit_code
    assert "bad.key_secret" in _error_line(result)


def test_serve_on_a_busy_port_says_so(tmp_path: Path, tiny_weights: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run("serve", "--bind", f"tcp://127.0.0.1:{port}", "--weights", tiny_weights, "--device", "cpu",
                      cwd=tmp_path)
    assert result.returncode == UsageError.exit_code
    line = _error_line(result)
    assert f"cannot listen on tcp://127.0.0.1:{port}: Address already in use" in line


@pytest.mark.parametrize("port", ["99999", "65536", "http", "-1"])
def test_serve_refuses_an_impossible_port(port: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """ZeroMQ bound a random port for 99999 (in process: the check comes before models or sockets)."""
    monkeypatch.setattr("logging.basicConfig", lambda **_: None)  # serve's log set-up must not outlive the test
    assert main(["serve", "--bind", f"tcp://127.0.0.1:{port}"]) == UsageError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the port must be a number from 1 to 65535" in err[0], err


def test_client_refuses_an_impossible_port() -> None:
    with Client("tcp://127.0.0.1:99999", timeout_s=0.2, retries=0) as client, \
            pytest.raises(UsageError, match="cannot connect to 'tcp://127.0.0.1:99999': the port must be"):
        client.ping()


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e9"])
def test_status_refuses_a_timeout_that_is_not_a_duration(value: str, capsys) -> None:
    """--timeout inf raised OverflowError (an internal error)."""
    with pytest.raises(SystemExit) as caught:
        main(["status", "--timeout", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == UsageError.exit_code
    assert len(err) == 1 and "is not a number of seconds in (0, 86400]" in err[0], err


def test_keygen_creates_the_secret_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mode must be right from creation on: with chmod disabled, nothing may fix it afterwards."""
    modes: dict[str, int] = {}
    real_chmod = os.chmod

    def no_chmod(path: str | os.PathLike, mode: int) -> None:
        modes[os.fspath(path)] = mode  # recorded, not applied

    monkeypatch.setattr(curve.os, "chmod", no_chmod)
    old_umask = os.umask(0o022)
    try:
        public, secret = generate_keypair(tmp_path, "node")
    finally:
        os.umask(old_umask)
        monkeypatch.setattr(curve.os, "chmod", real_chmod)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert os.fspath(secret) not in modes
    assert os.umask(0o022) == 0o022  # the process umask is restored


@pytest.mark.parametrize(("address", "env", "loopback"), [
    (None, None, True), ("127.0.0.1:1", None, True), ("localhost:6379", None, True),
    ("ray://127.0.0.1:10001", None, True),
    ("head.farm:6379", None, False), (None, "10.0.0.5:6379", False), (None, "127.0.0.1:6379", True)])
def test_local_ray_stays_on_loopback(monkeypatch: pytest.MonkeyPatch, address, env, loopback: bool) -> None:
    """Without a node address Ray found this machine's by routing towards the internet (issue 16 item 14)."""
    from nightgrade.server.farm import ray_jobs as farm_ray

    calls = []

    class FakeRay:
        @staticmethod
        def is_initialized() -> bool:
            return False

        @staticmethod
        def init(**kwargs) -> None:
            calls.append(kwargs)

    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")  # restored afterwards, whatever _connect sets
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert farm_ray._connect(FakeRay, farm_ray.RayConfig(address=address))
    assert (calls[0].get("_node_ip_address") == "127.0.0.1") is loopback
    assert "_node_ip_address" in calls[0] or not loopback


_RAY_NODES = """
import json, ray
from nightgrade.server.farm.ray_jobs import RayConfig, _connect
_connect(ray, RayConfig(num_cpus=1))
print(json.dumps(sorted({n["NodeManagerAddress"] for n in ray.nodes()} | {ray.get_runtime_context().gcs_address})))
ray.shutdown()
"""


def test_a_local_ray_instance_listens_on_loopback_only(tmp_path: Path) -> None:
    import json
    import sys

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run([sys.executable, "-c", _RAY_NODES], capture_output=True, text=True, timeout=180,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    addresses = json.loads(result.stdout.strip().splitlines()[-1])
    assert addresses and all(a.startswith("127.0.0.1") for a in addresses), addresses  # on main: 192.0.2.x
