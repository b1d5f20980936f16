"""Proxy geometry has one owner (issue 15): for the same frame and scale, a CLI render, the daemon
and farm resume agree on the proxy size and the tile plan (``colorpipeline.tiles.proxy_size``,
``TileConfig.scaled`` through ``render.tile_geometry``)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.io.imageio import read_header
from nightgrade.colorpipeline.tiling.plan import plan_tiles, proxy_size
from nightgrade.models.engine import EngineConfig
from nightgrade.server import protocol as proto
from nightgrade.server.cli.main import main
from nightgrade.server.daemon.models import ModelSet
from nightgrade.server.daemon.render import picture_context
from nightgrade.server.farm.resume import expected_output
from tests.conftest import write_image

LINEAR = "Linear Rec.709 (sRGB)"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("scale", [0.5, 0.37])
def test_cli_daemon_and_farm_resume_agree_on_proxy_size_and_tiles(tiny_weights, tmp_path, capsys, scale):
    source = tmp_path / "plate.0001.exr"
    write_image(source, np.random.default_rng(2).random((67, 201, 4), dtype=np.float32) * 0.2, pixel_type="float")
    out = tmp_path / "out" / "plate.0001.exr"
    assert main(["enhance", str(source), str(out), "--weights", tiny_weights, "--device", "cpu", "--scale", str(scale),
                 "--input-colorspace", LINEAR, "--bit-depth", "float", "--json", "--quiet"]) == 0
    cli = json.loads(capsys.readouterr().out)["tiles"]
    written = read_header(str(out))
    width, height = proxy_size(201, 67, scale)
    assert (written.width, written.height) == (width, height)

    config = color.ColorConfig(None)
    models = ModelSet([tiny_weights], EngineConfig(device="cpu"), config)
    have = proto.Have(id="q", version=1, clip="plate", frame=1, model=None, width=width, height=height, scale=scale,
                      format="float32", channels=4, colorspace=LINEAR, output_colorspace=None,
                      params=proto.RenderParams(), neighbours=(), digests=())
    daemon = picture_context(have, models, config).tiles
    assert {"local": daemon.local, "region": daemon.region, "stride": daemon.stride} == \
        {k: cli[k] for k in ("local", "region", "stride")}
    assert plan_tiles(height, width, daemon).count == cli["per_frame"]

    farm = expected_output(str(out), read_header(str(source)), scale)
    assert (farm.width, farm.height) == (width, height)
