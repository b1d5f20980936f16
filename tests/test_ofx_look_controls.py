"""The node's look controls, exposure and compare views (issue 19): what reaches the daemon, what an
older daemon without the features gets, and the Original and Split views' pixels."""
from __future__ import annotations

import numpy as np

from ofx_fake_daemon import enhance
from ofx_host.driver import assert_failed_with, frame, job_for, read_output


def test_look_controls_and_exposure_reach_the_daemon_only_when_set(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address)
    job.source(1.0, 1, frame(4))
    job.render(1.0, 1, tiles=1)                       # defaults: the model's own look, no new keys
    for name, value in (("exposure", 1.5), ("lumaDenoise", 0.5), ("chromaDenoise", 0.25), ("detail", 0.3)):
        job.set(name, value)
    job.render(1.0, 1, tiles=1)
    log = job.run()
    assert log.render_statuses() == [0, 0]
    first, second = [r for r in daemon.requests if r["type"] == "RENDER"]
    assert set(first["params"]) == {"mix", "temporal", "radius", "max_motion"}
    assert {k: second["params"][k] for k in ("exposure", "luma_denoise", "chroma_denoise", "detail")} == \
        {"exposure": 1.5, "luma_denoise": 0.5, "chroma_denoise": 0.25, "detail": 0.3}
    assert all(isinstance(second["params"][k], float) for k in ("exposure", "luma_denoise", "detail"))


def test_exposure_out_of_range_is_clamped_to_the_daemons_range(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, settings={"exposure": 9.0})
    job.source(1.0, 1, frame(4))
    job.render(1.0, 1, tiles=1)
    assert job.run().render_statuses() == [0]
    assert daemon.requests[-1]["params"]["exposure"] == 4.0


def test_a_daemon_without_the_features_is_refused_naming_the_fix(ofx, tmp_path, fake):
    daemon = fake(features=())
    (tmp_path / "default").mkdir()
    (tmp_path / "look").mkdir()
    job = job_for(ofx, tmp_path / "default", daemon.address)
    job.source(1.0, 1, frame(4))
    job.render(1.0, 1, tiles=1)                       # the defaults need no feature: renders
    assert job.run().render_statuses() == [0]
    job = job_for(ofx, tmp_path / "look", daemon.address, settings={"detail": 0.5})
    job.source(1.0, 1, frame(4))
    job.render(1.0, 1, tiles=1)
    log = job.run()
    assert_failed_with(log, "predates", "Detail", "set Luma/Chroma denoise to 1 and Detail to 0")
    job = job_for(ofx, tmp_path / "look", daemon.address, settings={"exposure": -1.0})
    job.source(1.0, 1, frame(4))
    job.render(1.0, 1, tiles=1)
    assert_failed_with(job.run(), "predates", "Exposure", "set Exposure to 0")
    assert daemon.types().count("RENDER") == 1        # nothing sent that it would ignore


def test_original_view_shows_the_input_without_the_daemon(ofx, tmp_path, fake):
    daemon = fake()
    job = job_for(ofx, tmp_path, daemon.address, settings={"view": 1})
    src = frame(5, 20, 30)
    job.source(1.0, 1, src)
    out = job.render(1.0, 1, tiles=2)
    job.identity(1)
    log = job.run()
    assert log.render_statuses() == [0, 0]
    np.testing.assert_array_equal(read_output(out, src), src)
    assert "RENDER" not in daemon.types()
    assert log.all("IDENTITY") == ["1 0 Source"]
    assert "View is Original" in log.values()["status"]


def test_split_view_wipes_original_left_and_enhanced_right_at_any_scale(ofx_asan, tmp_path, fake):
    job = job_for(ofx_asan, tmp_path, fake().address, settings={"view": 2, "splitPosition": 0.25})
    full, half = frame(6, 24, 40), frame(7, 12, 20)
    job.source(1.0, 1, full)
    job.source(0.5, 1, half)
    out_full, out_half = job.render(1.0, 1, tiles=3), job.render(0.5, 1, tiles=2)
    log = job.run(timeout=120)
    assert log.render_statuses() == [0] * 5
    assert "Sanitizer" not in log.stderr and "runtime error" not in log.stderr, log.stderr[-3000:]
    for out, src, col in ((out_full, full, 10), (out_half, half, 5)):  # 0.25 of the width either way
        got = read_output(out, src)
        np.testing.assert_array_equal(got[:, :col], src[:, :col])
        assert (got[:, col, :3] == 1.0).all() and np.array_equal(got[:, col, 3], enhance(src, np.float32(1))[:, col, 3])
        np.testing.assert_array_equal(got[:, col + 1:], enhance(src, np.float32(1))[:, col + 1:])
