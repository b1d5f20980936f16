"""`nightgrade enhance --ray` (server/farm/ray_jobs.py) on a local Ray instance with 2 CPUs: chunked
output equals a local render (temporal chunks with their handles included), resumes skip complete
frames, a worker killed in the middle of a chunk is restarted and its chunk rerun, and errors
inside a chunk come back as the same NightGrade error."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import ray

from nightgrade.colorpipeline.errors import InputError, UsageError
from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.server.cli.main import main
from nightgrade.server.farm.progress import FarmProgress
from nightgrade.server.farm.ray_jobs import RayConfig, _cpus_per_gpu, plan_chunks, render_on_ray, run_chunks, start_pool
from nightgrade.server.render.pipeline import RenderOptions, plan_sequence, render_sequence
from nightgrade.server.render.temporal import TemporalRenderConfig, render_temporal
from tests.conftest import read_image, write_image

pytestmark = pytest.mark.usefixtures("one_thread")  # workers and tasks run one thread too

WORKING = {"oiio:ColorSpace": "srgb_rec709_scene"}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module: 2 CPUs, so two single-threaded CPU workers."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _sequence(folder: Path, count: int, size: tuple[int, int] = (40, 56)) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    base = cv2.GaussianBlur(rng.random((size[0] + 8, size[1] + 32, 3), dtype=np.float32), (0, 0), 2.0)
    for i in range(count):
        frame = base[4:4 + size[0], 2 * i:2 * i + size[1]] * 0.3  # a pan, so the temporal window has work
        write_image(folder / f"s.{i + 1:04d}.exr", np.ascontiguousarray(frame), "float", ("R", "G", "B"), WORKING)
    return str(folder / "s.####.exr")


def _opts(src: str, out: Path, weights: str, **extra) -> RenderOptions:
    return RenderOptions(src, str(out / "o.####.exr"), weights=weights, bit_depth="float", batch=4, **extra)


def _pixels(out: Path, count: int) -> np.ndarray:
    return np.stack([read_image(out / f"o.{f:04d}.exr")[0] for f in range(1, count + 1)])


def test_plan_chunks_cuts_runs_of_pending_frames() -> None:
    assert plan_chunks(range(1001, 1011), 4) == ((1001, 1004), (1005, 1008), (1009, 1010))
    assert plan_chunks([1, 2, 3, 5, 6, 9], 2) == ((1, 2), (3, 3), (5, 6), (9, 9))  # done frames split runs
    assert plan_chunks([7], 10) == ((7, 7),)
    assert plan_chunks([], 3) == ()
    with pytest.raises(UsageError, match="chunk_size 0"):
        RayConfig(chunk_size=0)


def test_ray_chunks_equal_a_local_render(local_ray, tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", 8)
    window = TemporalRenderConfig(window=TemporalConfig(radius=2))
    render_temporal(_opts(src, tmp_path / "local", tiny_weights), window, show_progress=False)
    summary = render_on_ray(_opts(src, tmp_path / "ray", tiny_weights), RayConfig(chunk_size=3), window,
                            show_progress=False)
    assert (summary["frames_written"], summary["frames_skipped"]) == (8, 0)
    assert (summary["ray"]["workers"], summary["ray"]["chunks"], summary["ray"]["device"]) == (2, 3, "cpu")
    assert summary["temporal"]["source_frames"] == [1, 8]
    # handles: chunks 1-3, 4-6, 7-8 enhance 1-5, 2-8 and 5-8: 5 + 7 + 4 passes for 8 frames
    assert summary["generator_passes"] == 16
    np.testing.assert_allclose(_pixels(tmp_path / "ray", 8), _pixels(tmp_path / "local", 8), atol=1e-6)

    for f in (2, 3, 7):  # a stopped job: rerun it and only the missing frames are rendered
        os.remove(tmp_path / "ray" / f"o.{f:04d}.exr")
    resumed = render_on_ray(_opts(src, tmp_path / "ray", tiny_weights), RayConfig(chunk_size=3), window,
                            show_progress=False)
    assert (resumed["frames_written"], resumed["frames_skipped"], resumed["ray"]["chunks"]) == (3, 5, 3)
    np.testing.assert_allclose(_pixels(tmp_path / "ray", 8), _pixels(tmp_path / "local", 8), atol=1e-6)


def test_killed_worker_chunk_is_rerun_and_the_job_completes(local_ray, tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", 8, size=(128, 192))  # ~0.1 s a frame: a chunk is still running when killed
    render_sequence(_opts(src, tmp_path / "local", tiny_weights), show_progress=False)
    opts = _opts(src, tmp_path / "ray", tiny_weights)
    plan = plan_sequence(opts)
    chunks = plan_chunks([f for f, _ in plan.pending], 4)
    cfg = RayConfig(chunk_size=4, retries=2)
    pool = start_pool(opts, None, cfg)
    pids = pool.pids()
    outputs = [path for _, path in plan.pending]
    seen_at_kill: list[int] = []

    def kill_mid_chunk() -> None:
        deadline = time.monotonic() + 120
        while not any(os.path.exists(p) for p in outputs) and time.monotonic() < deadline:
            time.sleep(0.005)
        for pid in pids:  # freeze both workers, see how far they got, then kill them
            os.kill(pid, signal.SIGSTOP)
        seen_at_kill.append(sum(os.path.exists(p) for p in outputs))
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_mid_chunk)
    killer.start()
    try:
        with FarmProgress(dict(plan.pending), len(chunks), enabled=False) as progress:
            results, reruns = run_chunks(pool, chunks, cfg, progress)
    finally:
        killer.join()
        for actor in pool.actors:
            ray.kill(actor, no_restart=True)
    assert 1 <= seen_at_kill[0] < 8  # the kill landed inside a chunk
    assert reruns >= 1 and sorted(r["frames"][0] for r in results) == [1, 5]
    assert not {r["worker"]["pid"] for r in results} & set(pids)  # finished by restarted workers
    assert sum(r["frames_skipped"] for r in results) >= 1  # the rerun kept what the killed worker wrote
    # only whole frames; a writer killed mid-frame may leave a hidden temp file, never a partial frame
    assert sorted(n for n in os.listdir(tmp_path / "ray") if not n.startswith(".")) == \
        [f"o.{f:04d}.exr" for f in range(1, 9)]
    np.testing.assert_allclose(_pixels(tmp_path / "ray", 8), _pixels(tmp_path / "local", 8), atol=1e-6)


def test_errors_in_a_chunk_and_in_the_request(local_ray, tmp_path: Path, tiny_weights: str) -> None:
    src = _sequence(tmp_path / "in", 4)
    bad = tmp_path / "in" / "s.0003.exr"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # header intact, pixels cut short
    with pytest.raises(InputError, match=r"chunk 3-4: .*s\.0003\.exr.*corrupt or truncated"):
        render_on_ray(_opts(src, tmp_path / "out", tiny_weights), RayConfig(chunk_size=2), show_progress=False)
    assert not {"o.0003.exr", "o.0004.exr"} & set(os.listdir(tmp_path / "out"))
    with pytest.raises(UsageError, match="ray_workers 3 needs more"):
        start_pool(_opts(src, tmp_path / "out", tiny_weights), None, RayConfig(workers=3))
    with pytest.raises(UsageError, match="no GPU"):
        start_pool(_opts(src, tmp_path / "out", tiny_weights, device="cuda"), None, RayConfig())


def test_gpu_workers_take_the_cpus_of_their_node(local_ray) -> None:
    class Cluster:  # ray.nodes() of a cluster with a CPU-only head and two GPU nodes
        @staticmethod
        def nodes():
            return [{"Alive": True, "Resources": {"CPU": 64.0}},
                    {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 2.0}},
                    {"Alive": True, "Resources": {"CPU": 32.0, "GPU": 4.0}},
                    {"Alive": False, "Resources": {"GPU": 8.0}}]

    assert _cpus_per_gpu(Cluster) == 8  # not (64 + 16 + 32) / 6: a worker must fit on its GPU node
    (node,) = ray.nodes()  # the real call has the keys read above
    assert node["Alive"] and node["Resources"]["CPU"] == 2.0


def test_cli_ray_per_frame_render_and_flags(local_ray, tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", 4)
    render_sequence(_opts(src, tmp_path / "local", tiny_weights), show_progress=False)
    args = ["enhance", src, str(tmp_path / "out" / "o.####.exr"), "-w", tiny_weights, "--batch", "4"]
    assert main(args + ["--chunk-size", "2"]) == 2
    assert "--chunk-size applies only with --ray" in capsys.readouterr().err
    assert main(args + ["--ray", "--server", "tcp://127.0.0.1:5557"]) == 2
    assert main(args + ["--ray", "--radius", "2"]) == 2
    assert "--radius applies only to temporal renders" in capsys.readouterr().err
    args += ["--bit-depth", "float", "--ray", "--chunk-size", "3", "--ray-workers", "1"]
    assert main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["frames_written"], summary["ray"]["chunks"], summary["ray"]["workers"]) == (4, 2, 1)
    assert "temporal" not in summary and summary["model"] == "tiny 0.0.1"
    np.testing.assert_allclose(_pixels(tmp_path / "out", 4), _pixels(tmp_path / "local", 4), atol=1e-6)
    assert main(args) == 0  # all complete already
    line = capsys.readouterr().out
    assert "wrote 0 frame(s)" in line and "kept 4 complete" in line and "in 2 chunk(s)" in line
