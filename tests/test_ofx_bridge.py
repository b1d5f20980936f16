"""OFX bridge (issue 7): NightGrade.ofx built with CMake and driven by our own OpenFX host
(tests/ofx_host) against a fake daemon (tests/ofx_fake_daemon.py) whose pixel function the tests
reproduce and which misbehaves on request; one AddressSanitizer/UBSan build running the failure
cases. The real `nightgrade serve` behind the node: tests/test_ofx_bridge_daemon.py."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ofx_fake_daemon import FakeDaemon, enhance
from ofx_host.driver import (ROOT, Job, assert_failed_with, exported_symbols, frame, job_for,
                             parse_log, quantise, read_output, unused_address)


# ---- the binary and what it declares ----

def test_exports_only_the_two_openfx_entry_points(ofx):
    assert exported_symbols(ofx.plugin) == ["OfxGetNumberOfPlugins", "OfxGetPlugin"]


def test_describe_declares_contexts_depths_threading_and_never_connects(ofx, tmp_path, fake):
    daemon = fake()
    job = Job(tmp_path, ofx)
    job.set("daemonAddress", daemon.address)
    log = job.run()
    props = log.plugin_props()
    assert set(props["OfxImageEffectPropSupportedContexts"].split("|")) == {
        "OfxImageEffectContextFilter", "OfxImageEffectContextGeneral"}
    assert set(props["OfxImageEffectPropSupportedPixelDepths"].split("|")) == {
        "OfxBitDepthFloat", "OfxBitDepthHalf", "OfxBitDepthShort", "OfxBitDepthByte"}
    assert props["OfxImageEffectPluginRenderThreadSafety"] == "OfxImageEffectRenderFullySafe"
    assert props["OfxImageEffectPropSupportsTiles"] == "1"
    assert props["OfxImageEffectPropSupportsMultiResolution"] == "1"
    assert props["OfxImageEffectPropTemporalClipAccess"] == "1"
    assert props["OfxImageEffectPropColourManagementStyle"] == "OfxImageEffectPropColourManagementOCIO"
    assert log.all("PLUGIN") == ["com.nightgrade.NightGrade 0.1 OfxImageEffectPluginAPI 1"]
    assert log.completed() and not log.all("VIOLATION")
    assert daemon.requests == []  # load, describe, create and edits leave the daemon alone


def test_every_number_has_range_and_display_range_and_every_param_a_hint(ofx, tmp_path):
    params = Job(tmp_path, ofx).run().params()
    numbers = [n for n, p in params.items() if p["type"] in ("OfxParamTypeInteger", "OfxParamTypeDouble")]
    assert set(numbers) == {"mix", "radius", "maxMotion", "tileSize", "regionSize", "timeout", "heartbeat", "exposure",
                            "lumaDenoise", "chromaDenoise", "detail", "splitPosition"}
    for name in numbers:
        p = params[name]
        for key in ("OfxParamPropMin", "OfxParamPropMax", "OfxParamPropDisplayMin", "OfxParamPropDisplayMax"):
            assert key in p, (name, key)
        assert float(p["OfxParamPropMin"]) <= float(p["OfxParamPropDefault"]) <= float(p["OfxParamPropMax"])
    assert params["radius"]["OfxParamPropMax"] == "6" and params["exposure"]["OfxParamPropMax"] == "4"
    assert params["daemonAddress"]["OfxParamPropDefault"] == "tcp://127.0.0.1:5557"
    assert params["status"]["OfxParamPropStringMode"] == "OfxParamStringIsLabel"
    assert params["modelName"]["OfxParamPropSecret"] == "1"
    for name, p in params.items():
        if p["type"] != "OfxParamTypePage":
            assert p.get("OfxParamPropHint"), name
    children = [c for p in params.values() if p["type"] == "OfxParamTypePage"
                for c in p["OfxParamPropPageChild"].split("|")]
    assert sorted(children) == sorted(n for n, p in params.items()
                                      if p["type"] not in ("OfxParamTypePage", "OfxParamTypeGroup")
                                      and p.get("OfxParamPropSecret") != "1")


def test_a_host_without_a_required_suite_is_refused_at_load(ofx, tmp_path):
    log = Job(tmp_path, ofx, quirks=("no_parameter_suite",)).run()
    assert log.completed()
    # kOfxStatErrMissingHostFeature, and no action after it
    assert [a.split()[:2] for a in log.all("ACTION")] == [["OfxActionLoad", "4"]]


# ---- pixels through the protocol, against the fake daemon ----

def test_two_tiles_at_full_and_half_scale_equal_the_daemons_pixels(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address)
    full, half = frame(1, 48, 64), frame(2, 24, 32)
    job.source(1.0, 1, full)
    job.source(0.5, 1, half)
    out_full, out_half = job.render(1.0, 1), job.render(0.5, 1, interactive=True)
    log = job.run()
    assert log.completed() and log.render_statuses() == [0, 0, 0, 0] and not log.all("VIOLATION")
    np.testing.assert_array_equal(read_output(out_full, full), enhance(full, np.float32(1)))
    np.testing.assert_array_equal(read_output(out_half, half), enhance(half, np.float32(1)))
    renders = [r for r in daemon.requests if r["type"] == "RENDER"]
    assert [(r["scale"], r["width"], r["height"]) for r in renders] == [(1.0, 64, 48)] * 2 + [(0.5, 32, 24)] * 2
    # The host renders the bottom band first; the protocol counts rows from the top.
    assert [r["window"] for r in renders] == [[0, 24, 64, 48], [0, 0, 64, 24], [0, 12, 32, 24], [0, 0, 32, 12]]
    assert [r["priority"] for r in renders] == ["batch", "batch", "interactive", "interactive"]
    assert isinstance(renders[0]["scale"], float) and isinstance(renders[0]["params"]["mix"], float)
    assert "model" not in renders[0] and "colorspace" not in renders[0]
    assert daemon.types().count("HELLO") == 1
    assert log.all("ROI")[0].split()[-1] == "0|0|64|48"  # the whole source, whatever the window
    assert "Frame 1 by nightgrade fake" in log.values()["status"]
    assert "the host reports no colourspace, so Linear Rec.709" in log.values()["status"]


@pytest.mark.parametrize("depth,layout,channels,context", [
    ("half", "padded", 4, "filter"), ("short", "negative", 4, "filter"), ("byte", "tight", 3, "filter"),
    ("float", "negative", 3, "general")])
def test_depths_layouts_rgb_and_contexts(ofx, tmp_path, fake, depth, layout, channels, context):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, depth=depth, layout=layout, channels=channels, context=context)
    src = frame(3, 20, 30, channels)
    job.source(1.0, 1, src)
    out = job.render(1.0, 1, tiles=3)
    log = job.run()
    assert log.completed() and log.render_statuses() == [0, 0, 0] and not log.all("VIOLATION")
    expected = quantise(enhance(quantise(src, depth), np.float32(1)), depth)
    np.testing.assert_allclose(read_output(out, src), expected, rtol=0, atol=1e-6)
    assert daemon.requests[-1]["channels"] == channels and daemon.requests[-1]["format"] == "float32"


def test_mix_colourspace_model_and_geometry_reach_the_daemon(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, clip_colourspace="lin_rec709_srgb")
    src = frame(4)
    job.source(1.0, 1, src)
    job.render(1.0, 1, tiles=1)                      # host colourspace, default model
    job.press("reconnect")                           # fills the Model choice from WELCOME
    for name, value in (("model", 2), ("mix", 0.25), ("inputColorspace", "ACEScg"), ("tileSize", 128),
                        ("regionSize", 320), ("maxMotion", 40)):
        job.set(name, value)
    out = job.render(1.0, 1, tiles=1)
    log = job.run()
    first, second = [r for r in daemon.requests if r["type"] == "RENDER"]
    assert first["colorspace"] == "lin_rec709_srgb" and "model" not in first
    assert second["model"] == "fake-alt" and second["colorspace"] == "ACEScg"
    assert second["params"] == {"mix": 0.25, "temporal": False, "radius": 6, "max_motion": 40.0, "tile": 128,
                                "region": 320}
    assert log.choices("model") == ["Default (fake)", "fake", "fake-alt"]
    assert log.values()["modelName"] == "fake-alt"
    np.testing.assert_allclose(read_output(out, src), enhance(src, np.float32(0.25)), atol=1e-6)


@pytest.mark.parametrize("models", [("fake",), ("fake", "fake-alt", "fake-3")])
def test_a_model_the_daemon_lacks_is_listed_last_and_chosen(ofx_asan, tmp_path, fake, models):
    # Option lists of 2 and 4 entries are full vectors: appending the missing model reallocates them.
    job = job_for(ofx_asan, tmp_path, fake(models=models).address)
    job.set("modelName", "night-v9")
    job.press("reconnect")
    log = job.run(timeout=120)
    assert log.completed(), log.stderr[-3000:]
    assert "Sanitizer" not in log.stderr and "runtime error" not in log.stderr, log.stderr[-3000:]
    assert not log.all("VIOLATION")
    assert log.choices("model") == ["Default (fake)", *models, "night-v9 (not on this daemon)"]
    assert log.values()["model"] == str(len(models) + 1)


@pytest.mark.parametrize("host_says,sent", [("ofx_scene_linear", "scene_linear"), ("ACEScg", "ACEScg"),
                                             ("OfxColourspace_Output", None)])
def test_the_hosts_clip_colourspace_reaches_the_daemon_as_an_ocio_name(ofx, tmp_path, fake, host_says, sent):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, clip_colourspace=host_says)
    job.source(1.0, 1, frame(4))
    job.render(1.0, 1, tiles=1)
    log = job.run()
    assert log.render_statuses() == [0]
    assert daemon.requests[-1].get("colorspace") == sent
    assert ("input colourspace " + sent if sent else "the host reports no colourspace") in log.values()["status"]


def test_mix_zero_is_an_identity(ofx, tmp_path, fake):
    job = job_for(ofx, tmp_path, fake().address)
    job.set("mix", 0)
    job.identity(1)
    assert job.run().all("IDENTITY") == ["1 0 Source"]


def test_temporal_sends_only_the_neighbours_the_daemon_needs(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, {"temporal": 1, "radius": 2}, frame_range=(1, 5))
    for f in range(1, 6):
        job.source(1.0, f, frame(10 + f))
    job.render(1.0, 3, tiles=1)
    job.render(1.0, 4, tiles=1)
    log = job.run()
    assert log.render_statuses() == [0, 0] and not log.all("VIOLATION")
    assert log.all("FRAMES") == ["3 0 1|5", "4 0 2|5"]  # clamped to the clip's frame range
    have3, render3, have4, render4 = [r for r in daemon.requests if r["type"] in ("HAVE", "RENDER")]
    assert sorted(n["frame"] for n in have3["neighbours"]) == [1, 2, 4, 5]
    assert len(render3["attached"]) == 4 and render3["attached"] == sorted(render3["attached"], key=have3["digests"].index)
    assert sorted(n["frame"] for n in have4["neighbours"]) == [2, 3, 5]  # frame 6 does not exist
    assert "attached" not in render4  # the daemon already held every neighbour


def test_identical_neighbours_are_dropped_and_reported(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, {"temporal": 1, "radius": 1}, frame_range=(1, 3),
                  quirks=("same_neighbours",))
    for f in (1, 2, 3):
        job.source(1.0, f, frame(20 + f))
    job.render(1.0, 2, tiles=1)
    log = job.run()
    assert log.render_statuses() == [0]
    assert "same image for every neighbouring frame" in log.values()["status"]
    assert "HAVE" not in daemon.types()


def test_missing_render_scale_is_inferred_from_the_image_bounds(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, quirks=("omit_render_scale",))
    job.source(1.0, 1, frame(5, 48, 64))
    job.source(0.5, 1, frame(6, 24, 32))
    job.render(0.5, 1, tiles=1)
    assert job.run().render_statuses() == [0]
    assert daemon.requests[-1]["scale"] == 0.5


# ---- failures: each render returns with a message and the host carries on ----

def test_daemon_not_running_fails_fast_naming_nightgrade_serve(ofx, tmp_path):
    job = job_for(ofx, tmp_path, unused_address())
    job.source(1.0, 1, frame(7))
    job.render(1.0, 1)
    job.render(1.0, 1)
    log = job.run(timeout=30)
    assert_failed_with(log, "cannot reach the daemon", "nightgrade serve")
    assert len(log.persistent()) == 1  # the same error is not posted again


@pytest.mark.parametrize("address,words", [
    ("tcp://no-port-here", ("no :PORT",)), ("inproc://nightgrade", ("inproc:// cannot reach a daemon",)),
    ("tcp://127.0.0.1:99999", ("port '99999' is not a port number",)), ("tcp://127.0.0.1:0", ("port '0'",)),
    ("tcp://:5557", ("no host",)), ("127.0.0.1:5557", ("no tcp:// or ipc://",))])
def test_invalid_address_says_what_is_wrong_and_how_to_write_one(ofx, tmp_path, address, words):
    job = job_for(ofx, tmp_path, address, {"timeout": 30, "heartbeat": 20})
    job.source(1.0, 1, frame(7))
    job.render(1.0, 1, tiles=1)
    started = time.monotonic()
    log = job.run()
    assert time.monotonic() - started < 10  # said at once, not after the heartbeat
    assert_failed_with(log, "not a valid daemon address", "tcp://HOST:PORT", *words)


def test_render_scale_that_does_not_fit_the_image_is_refused_naming_both(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, quirks=("half_size_image",))
    job.source(1.0, 1, frame(5, 48, 64))
    job.source(0.5, 1, frame(6, 24, 32))
    job.render(1.0, 1, tiles=2)
    assert_failed_with(job.run(), "render scale 1", "32x24 source image for a 64x48 clip")
    assert "RENDER" not in daemon.types()


@pytest.mark.parametrize("mode,words", [
    ("garbage", ("malformed reply", "not msgpack")), ("no_type", ("malformed reply", "no 'type'")),
    ("bad_result", ("RESULT has", "wrong size")), ("wrong_window", ("RESULT has", "window"))])
def test_malformed_replies_fail_the_render_with_a_message(ofx, tmp_path, fake, mode, words):
    job = job_for(ofx, tmp_path, fake(mode=mode).address)
    job.source(1.0, 1, frame(8))
    job.render(1.0, 1, tiles=2)
    assert_failed_with(job.run(), *words)


def test_daemon_error_is_shown_with_its_code(ofx, tmp_path, fake):
    job = job_for(ofx, tmp_path, fake(mode="error", error_code="UNKNOWN_MODEL").address)
    job.source(1.0, 1, frame(9))
    job.render(1.0, 1, tiles=1)
    assert_failed_with(job.run(), "fake daemon refuses", "[UNKNOWN_MODEL]")


def test_silent_daemon_counts_as_dead_after_the_heartbeat(ofx, tmp_path, fake):
    job = job_for(ofx, tmp_path, fake(mode="silent").address, {"timeout": 60, "heartbeat": 0.5})
    job.source(1.0, 1, frame(9))
    job.render(1.0, 1, tiles=1)
    assert_failed_with(job.run(timeout=30), "stopped answering")


def test_busy_daemon_that_answers_pings_is_waited_for(ofx, tmp_path, fake):
    daemon = fake(mode="slow", delay_s=2.5)
    job = job_for(ofx, tmp_path, daemon.address, {"timeout": 30, "heartbeat": 1})
    src = frame(10)
    job.source(1.0, 1, src)
    out = job.render(1.0, 1, tiles=1)
    assert job.run().render_statuses() == [0]
    assert "PING" in daemon.types()
    np.testing.assert_array_equal(read_output(out, src), enhance(src, np.float32(1)))


def test_a_full_queue_is_waited_out(ofx, tmp_path, fake):
    daemon = fake(mode="busy_once")
    job = job_for(ofx, tmp_path, daemon.address)
    src = frame(19)
    job.source(1.0, 1, src)
    out = job.render(1.0, 1, tiles=1)
    assert job.run().render_statuses() == [0]
    assert daemon.types().count("RENDER") == 2
    np.testing.assert_array_equal(read_output(out, src), enhance(src, np.float32(1)))


def test_silent_daemon_past_a_short_timeout_is_not_called_busy(ofx, tmp_path, fake):
    job = job_for(ofx, tmp_path, fake(mode="silent").address, {"timeout": 1, "heartbeat": 30})
    job.source(1.0, 1, frame(11))
    job.render(1.0, 1, tiles=1)
    assert_failed_with(job.run(), "did not answer within 1 s, not even to PING")


def test_busy_daemon_past_the_timeout_fails_saying_so(ofx, tmp_path, fake):
    job = job_for(ofx, tmp_path, fake(mode="slow", delay_s=30).address, {"timeout": 2.5, "heartbeat": 1})
    job.source(1.0, 1, frame(11))
    job.render(1.0, 1, tiles=1)
    assert_failed_with(job.run(), "alive but did not answer within 2.5 s", "busy", "Timeout")


def test_host_abort_gives_up_without_an_error_message(ofx, tmp_path, fake):
    job = job_for(ofx, tmp_path, fake(mode="slow", delay_s=30).address, {"timeout": 60}, quirks=("abort",))
    job.source(1.0, 1, frame(12))
    job.render(1.0, 1, tiles=1)
    log = job.run()
    assert log.completed() and log.render_statuses() == [1] and not log.persistent()


def test_daemon_killed_mid_render(ofx, tmp_path):
    daemon = subprocess.Popen([sys.executable, str(ROOT / "tests" / "ofx_fake_daemon.py"), "--mode", "stall"],
                              stdout=subprocess.PIPE, text=True)
    try:
        address = daemon.stdout.readline().split()[1]
        job = job_for(ofx, tmp_path, address, {"timeout": 60, "heartbeat": 1})
        job.source(1.0, 1, frame(13))
        job.render(1.0, 1, tiles=1)
        host = job.start()
        while (line := daemon.stdout.readline()) and line.strip() != "GOT RENDER":
            pass
        daemon.send_signal(signal.SIGKILL)
        stdout, stderr = host.communicate(timeout=30)
    finally:
        daemon.kill()
        daemon.wait()
    assert_failed_with(parse_log(stdout, host.returncode, stderr), "stopped answering", "restart `nightgrade serve`")


def test_no_source_image_and_no_persistent_messages_are_survived(ofx, tmp_path):
    job = job_for(ofx, tmp_path, unused_address(), quirks=("null_source", "no_persistent_message"))
    job.source(1.0, 1, frame(14))
    job.render(1.0, 1, tiles=1)
    log = job.run()
    assert log.completed() and log.render_statuses() == [1]
    assert not log.persistent()  # the host has no persistent messages: a plain one instead
    assert any("gave no source image" in m for m in log.all("MESSAGE"))


def test_recovers_and_clears_the_message_when_the_daemon_comes_back(ofx, tmp_path):
    address, go = unused_address(), tmp_path / "daemon-started"
    job = job_for(ofx, tmp_path, address)
    src = frame(15)
    job.source(1.0, 1, src)
    job.render(1.0, 1, tiles=1)
    job.wait_for(go)
    job.press("reconnect")
    out = job.render(1.0, 1, tiles=1)
    host = job.start()
    daemon = None
    try:
        while (line := host.stdout.readline()) and not line.startswith("WAITING"):
            pass
        daemon = FakeDaemon(bind=address).start()
        go.touch()
        stdout, stderr = host.communicate(timeout=30)
    finally:
        if daemon is not None:
            daemon.stop()
    log = parse_log(stdout, host.returncode, stderr)
    assert log.completed() and log.render_statuses() == [0]
    assert any(k == "CLEAR" for k, _ in log.lines)
    assert log.choices("model") == ["Default (fake)", "fake", "fake-alt"]
    np.testing.assert_array_equal(read_output(out, src), enhance(src, np.float32(1)))


# ---- the same failure cases and one good render under AddressSanitizer and UBSan ----

def test_sanitized_build_is_clean_on_failures_and_success(ofx_asan, tmp_path, fake):
    cases = [("down", unused_address(), {}), ("garbage", fake(mode="garbage").address, {}),
             ("silent", fake(mode="silent").address, {"heartbeat": 0.3}), ("ok", fake().address, {})]
    for name, address, settings in cases:
        folder = tmp_path / name
        folder.mkdir()
        job = job_for(ofx_asan, folder, address, settings, depth="half", layout="negative")
        src = frame(16, 24, 32)
        job.source(1.0, 1, src)
        job.source(0.5, 1, src[::2, ::2])
        job.render(1.0, 1)
        out = job.render(0.5, 1)
        log = job.run(timeout=120)
        assert log.completed(), (name, log.stderr[-3000:])
        assert "Sanitizer" not in log.stderr and "runtime error" not in log.stderr, log.stderr[-3000:]
        assert log.render_statuses() == ([0] * 4 if name == "ok" else [1] * 4), name
    expected = quantise(enhance(quantise(src[::2, ::2], "half"), np.float32(1)), "half")
    np.testing.assert_allclose(read_output(out, expected), expected, atol=0)
