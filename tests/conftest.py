"""Shared fixtures: a tiny random-init checkpoint, writers for synthetic frame sequences, a daemon on a thread."""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.checkpoint import CheckpointMeta, save_checkpoint
from nightgrade.models.networks import GeneratorConfig, build_generator

# the shipped design (tile-consistent, with the frame exposure branch), so every path exercises it
TINY = GeneratorConfig(ngf=8, n_blocks=2, norm="none", skips=True, residual=True, exposure=True)


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Models exported for the ONNX backends (the CLI's and daemon's default on a CPU) go to a
    folder of this test run, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-init generator small enough for fast CLI tests (Nl=64, Nr=160, stride 32)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    meta = CheckpointMeta(generator=TINY, tiles=TileConfig(64, 160, 32), model_name="tiny", model_version="0.0.1")
    save_checkpoint(path, build_generator(TINY), meta)
    return str(path)


def write_image(path: Path, pixels: np.ndarray, pixel_type: str = "half", names: tuple[str, ...] | None = None,
                attributes: dict | None = None) -> None:
    """Write ``pixels`` (HxWxC float) with OIIO directly, independent of nightgrade's writer."""
    height, width, channels = pixels.shape
    spec = oiio.ImageSpec(width, height, channels, pixel_type)
    if names:
        spec.channelnames = names
    for key, value in (attributes or {}).items():
        if isinstance(value, tuple) and isinstance(value[0], oiio.TypeDesc):
            spec.attribute(key, value[0], value[1])
        else:
            spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, dtype=np.float32)), out.geterror()
    out.close()


def save_with_mirrors(loaded, mirrors: bool, path: Path | str) -> str:
    """``loaded`` (a ``load_checkpoint`` result) saved to ``path`` with the exposure branch's mirror average
    set to ``mirrors``: the same weights digest and model name, another picture (0.3.3 and 0.3.4)."""
    config = dataclasses.replace(loaded.meta.generator, exposure_mirrors=mirrors)
    generator = build_generator(config)
    generator.load_state_dict(loaded.generator.state_dict())
    save_checkpoint(path, generator, dataclasses.replace(loaded.meta, generator=config, digest="", created=""))
    return str(path)


@contextlib.contextmanager
def serving(config) -> Iterator:
    """A daemon on ``config`` (a ``DaemonConfig``) serving on a thread for the block; stopped, joined and closed after."""
    from nightgrade.server.daemon.server import Daemon
    served = Daemon(config)
    ready = threading.Event()
    thread = threading.Thread(target=served.serve, args=(ready,), daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        yield served
    finally:
        served.stop()
        thread.join(30)
        served.close()


def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``seconds``."""
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def read_image(path: Path) -> tuple[np.ndarray, oiio.ImageSpec]:
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    pixels = image.read_image("float")
    spec = oiio.ImageSpec(image.spec())
    image.close()
    return np.asarray(pixels, dtype=np.float32), spec


@pytest.fixture(scope="session")
def ofx():
    """The OFX plugin and test host, Release build (built once per session, reused)."""
    from ofx_host.driver import ROOT, build

    return build(ROOT / "build" / "ofx")


@pytest.fixture(scope="session")
def ofx_asan():
    """The same with AddressSanitizer and UBSan."""
    from ofx_host.driver import ROOT, build

    return build(ROOT / "build" / "ofx-asan", sanitize=True)


@pytest.fixture
def one_thread():
    """Tiny frames: threads only add overhead, and other work shares this machine's cores. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import cv2

    cv2_threads, torch_threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    yield
    cv2.setNumThreads(cv2_threads)
    torch.set_num_threads(torch_threads)


@pytest.fixture
def fake():
    """Starts fake daemons for OFX tests (tests/ofx_fake_daemon.py); stops them after the test."""
    from ofx_fake_daemon import FakeDaemon
    daemons = []

    def start(**kwargs) -> FakeDaemon:
        daemons.append(FakeDaemon(**kwargs).start())
        return daemons[-1]

    yield start
    for d in daemons:
        d.stop()
