"""The OFX node and a daemon on another machine (issue 7): Curve keys open a daemon that demands
them, only for authorised keys, and every key mistake is named in one line."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import zmq.auth

from ofx_host.driver import assert_failed_with, frame, job_for


def test_curve_keys_open_a_daemon_that_demands_them_and_only_authorised_ones(ofx, tmp_path, fake):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    daemon_public, daemon_pair = zmq.auth.create_certificates(keys, "daemon")
    client_public, client_pair = zmq.auth.create_certificates(keys, "workstation")
    _, stranger_pair = zmq.auth.create_certificates(keys, "stranger")
    shutil.copy(client_public, allowed)
    address = fake(curve=(Path(daemon_pair), allowed)).address
    logs = {}
    for name, pair in (("authorised", client_pair), ("stranger", stranger_pair), ("no-keys", "")):
        folder = tmp_path / name
        folder.mkdir()
        settings = {"curveServerKey": daemon_public, "curveClientKey": pair} if pair else {}
        job = job_for(ofx, folder, address, settings)
        job.source(1.0, 1, frame(17))
        job.render(1.0, 1, tiles=1)
        logs[name] = job.run()
    assert logs["authorised"].render_statuses() == [0]
    assert_failed_with(logs["stranger"], "with Curve", "authorised keys folder holds this machine's NAME.key")
    assert_failed_with(logs["no-keys"], "cannot reach the daemon")


@pytest.mark.parametrize("settings,words", [
    ({"curveServerKey": "/nonexistent/daemon.key"}, ("needs both",)),
    ({"curveServerKey": "/nonexistent/daemon.key", "curveClientKey": "/nonexistent/me.key_secret"},
     ("cannot read the daemon's public key", "nightgrade keygen")),
    ({"curveServerKey": __file__, "curveClientKey": __file__}, ("holds no public-key",))])
def test_curve_key_mistakes_are_named(ofx, tmp_path, fake, settings, words):
    job = job_for(ofx, tmp_path, fake().address, settings)
    job.source(1.0, 1, frame(18))
    job.render(1.0, 1, tiles=1)
    assert_failed_with(job.run(), *words)
