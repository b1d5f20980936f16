"""Two checkpoints with the same weights used differently (0.3.3 and 0.3.4: one generator switch apart)
are two models to the daemon: told apart by name, never batched through each other's engine."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.errors import ModelError
from nightgrade.models.checkpoint import load_checkpoint, picture_identity
from nightgrade.models.engine import EngineConfig
from nightgrade.server.client import Client, RenderRequest
from nightgrade.server.client.errors import DaemonModelError
from nightgrade.server.client.remote_render import served_identity
from nightgrade.server.daemon.models import ModelSet
from nightgrade.server.daemon.server import Daemon, DaemonConfig
from nightgrade.server.render.pipeline import ColourPlan, finish_rgb, tile_geometry, working_rgb
from tests.conftest import save_with_mirrors, serving, wait_for

SRGB = "sRGB Encoded Rec.709 (sRGB)"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def twins(tiny_weights: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The tiny model with a learned-looking exposure branch, saved with the mirror average off and on."""
    loaded = load_checkpoint(tiny_weights)
    torch.manual_seed(5)
    with torch.no_grad():
        for p in [*loaded.generator.exposure.features.parameters(), *loaded.generator.exposure.head.parameters()]:
            p.normal_(0.0, 0.1)  # corrections that depend on the layout, so the switch changes pictures
    folder = tmp_path_factory.mktemp("twins")
    paths = [save_with_mirrors(loaded, mirrors, folder / f"mirrors-{mirrors}.safetensors") for mirrors in (False, True)]
    return paths[0], paths[1]


def test_same_weights_used_differently_are_two_models(twins: tuple[str, str]) -> None:
    models = ModelSet(list(twins), EngineConfig(device="cpu"), color.ColorConfig(None))
    plain, mirrored = models.models
    assert plain.digest == mirrored.digest and plain.identity != mirrored.identity
    assert plain.identity == picture_identity(load_checkpoint(twins[0]).meta)
    assert plain.name != mirrored.name and mirrored.name.startswith(f"{plain.name}@")
    assert models.get(mirrored.name) is mirrored and models.get(plain.name) is plain
    with pytest.raises(ModelError, match="name one"):
        models.get(plain.digest)  # the weights digest no longer says which


def test_a_client_records_the_model_the_daemon_will_use(twins: tuple[str, str]) -> None:
    # `enhance --server` records WELCOME's identity of the model its requests name, by the daemon's own rule
    models = ModelSet(list(twins), EngineConfig(device="cpu"), color.ColorConfig(None))
    welcome = {"models": models.describe()}
    for wanted in (None, models.models[0].name, models.models[1].name):
        assert served_identity(welcome, wanted) == models.get(wanted).identity
    with pytest.raises(DaemonModelError, match="name one"):
        served_identity(welcome, models.models[0].digest)
    with pytest.raises(DaemonModelError, match="no model 'other'"):
        served_identity(welcome, "other")
    older = {"models": [{k: v for k, v in m.items() if k != "identity"} for m in welcome["models"]]}
    assert served_identity(older, None).endswith(models.models[0].digest)  # a daemon from before the field


@pytest.fixture(scope="module")
def daemon(twins: tuple[str, str]) -> Iterator[Daemon]:
    with serving(DaemonConfig(bind="tcp://127.0.0.1:0", weights=twins, device="cpu", cache_mb=64, max_jobs=8)) as served:
        yield served


def test_queued_requests_for_each_model_get_that_models_picture(daemon: Daemon) -> None:
    rng = np.random.default_rng(9)
    frame = (rng.random((48, 64, 3), dtype=np.float32) * np.linspace(0.02, 0.3, 64)[None, :, None]).astype(np.float32)
    names = [m.name for m in daemon.models.models]
    results: dict[str, np.ndarray] = {}

    def render(key: str, model: str, pixels: np.ndarray) -> None:
        with Client(daemon.endpoint, timeout_s=60) as client:
            results[key] = client.render_frame(RenderRequest(clip=key, frame=0, model=model, colorspace=SRGB),
                                               pixels).pixels

    # a long render holds the worker, so the small ones for both models queue up together
    long = threading.Thread(target=render, args=("long", names[0], rng.random((512, 512, 3), dtype=np.float32)))
    long.start()
    wait_for(lambda: daemon.scheduler.in_flight() == 1)
    threads = [threading.Thread(target=render, args=(name, name, frame)) for name in names]
    for thread in threads:
        thread.start()
    queued = 0
    while long.is_alive() and queued < 2:
        queued = max(queued, daemon.scheduler.depth())
        time.sleep(0.001)
    assert queued == 2  # both waited together: a worker grouping by weights digest would batch them as one model
    for thread in [long, *threads]:
        thread.join(120)
    expected = {}
    for name in names:
        model = daemon.models.get(name)
        colours = ColourPlan(daemon.colours, SRGB, model.working, SRGB)
        working, in_range, excess = working_rgb(frame, colours)
        expected[name] = finish_rgb(model.engine.enhance(in_range, tile_geometry(model.engine)), working, excess,
                                    colours, 1.0)
    assert np.abs(expected[names[0]] - expected[names[1]]).max() > 1e-3  # the switch changes this picture
    for name in names:
        assert np.abs(expected[name] - results[name]).max() <= 1e-5, name
