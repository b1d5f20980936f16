"""The whole in-process pixel path (server/render/pipeline.py) with controlled generators.

A generator replaced by a known function lets us check the plumbing exactly: colour
conversions, highlight carry-around, tiling, proxy scaling and mix.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.colorpipeline.tiling.plan import TileConfig
from nightgrade.models.engine import Engine
from nightgrade.server.render.pipeline import RenderOptions, render_sequence
from tests.conftest import read_image, write_image



def _no_exposure(self: Engine, frame: np.ndarray, exposure_stops: float = 0.0) -> np.ndarray:
    return frame

def _identity(self: Engine, batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(batch[:, :3])


def _local_plus_region(self: Engine, batch: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(0.5 * batch[:, :3] + 0.5 * batch[:, 3:6])


def _textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus mid-frequency texture, in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    base = np.stack([x / width, y / height, 0.5 + 0.25 * np.sin(x / 9.0) * np.cos(y / 7.0)], axis=-1)
    blobs = cv2.GaussianBlur(rng.random((height, width, 3), dtype=np.float32), (0, 0), 3.0)
    return np.clip(0.6 * base + 0.8 * (blobs - 0.5), 0.0, 1.0).astype(np.float32)


def test_identity_generator_round_trips_hdr_exr(tmp_path: Path, tiny_weights: str, monkeypatch) -> None:
    monkeypatch.setattr(Engine, "run_batch", _identity)
    monkeypatch.setattr(Engine, "prepare_frame", _no_exposure)  # the plumbing alone
    pixels = _textured(70, 150) * 4.0 - 0.02  # scene-linear: highlights to ~4, small negatives
    pixels[10:20, 30:40] = 50.0  # a point light far above 1.0
    write_image(tmp_path / "in.0001.exr", pixels, "float", ("R", "G", "B"))
    render_sequence(RenderOptions(str(tmp_path / "in.####.exr"), str(tmp_path / "out" / "o.####.exr"),
                                  weights=tiny_weights, bit_depth="float"), show_progress=False)
    out, spec = read_image(tmp_path / "out" / "o.0001.exr")
    np.testing.assert_allclose(out, pixels, rtol=2e-5, atol=2e-6)
    assert spec.get_string_attribute("oiio:ColorSpace") == "lin_rec709_scene"


def test_mix_zero_returns_the_input(tmp_path: Path, tiny_weights: str) -> None:
    pixels = _textured(40, 50)
    write_image(tmp_path / "a.0007.png", pixels, "uint16", ("R", "G", "B"))
    render_sequence(RenderOptions(str(tmp_path / "a.####.png"), str(tmp_path / "b.####.png"),
                                  weights=tiny_weights, mix=0.0), show_progress=False)
    out, _ = read_image(tmp_path / "b.0007.png")
    np.testing.assert_allclose(out, pixels, atol=1.5 / 65535)


def test_mix_blends_linearly_in_working_space(tmp_path: Path, tiny_weights: str) -> None:
    pixels = _textured(40, 50)
    write_image(tmp_path / "a.0001.exr", pixels, "float", ("R", "G", "B"),
                {"oiio:ColorSpace": "srgb_rec709_scene"})  # already the working space: no conversion
    outs = {}
    for mix in (0.0, 0.25, 1.0):
        render_sequence(RenderOptions(str(tmp_path / "a.####.exr"), str(tmp_path / f"m{mix}" / "a.####.exr"),
                                      weights=tiny_weights, mix=mix, bit_depth="float",
                                          output_colorspace="srgb_rec709_scene"), show_progress=False)
        outs[mix] = read_image(tmp_path / f"m{mix}" / "a.0001.exr")[0]
    assert np.abs(outs[1.0] - outs[0.0]).max() > 0.05  # the random model does change the picture
    np.testing.assert_allclose(outs[0.25], 0.75 * outs[0.0] + 0.25 * outs[1.0], atol=1e-5)


def test_proxy_has_the_same_look_scaled(tmp_path: Path, tiny_weights: str, monkeypatch) -> None:
    """A proxy render equals the full render downscaled; ignoring the scale (tile and region sizes
    in proxy pixels) visibly does not — the region input then covers twice the picture."""
    monkeypatch.setattr(Engine, "run_batch", _local_plus_region)
    monkeypatch.setattr(Engine, "prepare_frame", _no_exposure)  # the plumbing alone
    pixels = _textured(192, 256, seed=3)
    write_image(tmp_path / "f.0001.exr", pixels, "float", ("R", "G", "B"))
    half = cv2.resize(pixels, (128, 96), interpolation=cv2.INTER_AREA)
    write_image(tmp_path / "h.0001.exr", half, "float", ("R", "G", "B"))

    def render(src: str, dst: str, scale: float) -> np.ndarray:
        render_sequence(RenderOptions(str(tmp_path / src), str(tmp_path / dst), weights=tiny_weights,
                                      scale=scale, bit_depth="float"), show_progress=False)
        return read_image(tmp_path / dst.replace("####", "0001"))[0]

    full = render("f.####.exr", "full/f.####.exr", 1.0)
    proxy = render("f.####.exr", "proxy/f.####.exr", 0.5)
    naive = render("h.####.exr", "naive/h.####.exr", 1.0)
    assert proxy.shape == (96, 128, 3)
    reference = cv2.resize(full, (128, 96), interpolation=cv2.INTER_AREA)
    err_proxy = np.abs(proxy - reference).mean()
    err_naive = np.abs(naive - reference).mean()
    assert err_proxy < 0.01
    assert err_proxy < 0.5 * err_naive


@pytest.mark.parametrize("server", [False, True])
def test_proxies_average_linear_light_not_encoded_values(tmp_path: Path, tiny_weights: str, server: bool) -> None:
    """A 0/1 checkerboard in sRGB encoding: its half-scale proxy is 50% linear light (0.7354 encoded),
    as a host's proxy and the downscaled final are; averaging the encoded values gave 0.5 encoded
    (21% light), a proxy far darker than the final. Mix 0 shows the proxy input itself, through the
    real generator run, locally and through the daemon (enhance --server). The float EXR output
    holds linear values (the output colourspace rule), so 50% light reads 0.5 there."""
    from daemon_fixtures import free_port, start_serve, stop_process, wait_ready

    board = np.indices((32, 48)).sum(axis=0) % 2
    pixels = np.repeat(board[..., None], 3, axis=2).astype(np.float32)
    write_image(tmp_path / "c.0001.exr", pixels, "float", ("R", "G", "B"), {"oiio:ColorSpace": "srgb_rec709_scene"})
    opts = RenderOptions(str(tmp_path / "c.####.exr"), str(tmp_path / "out") + "/", weights=tiny_weights, mix=0.0,
                         scale=0.5, bit_depth="float")
    if server:
        from nightgrade.server.cli.main import main as cli_main

        endpoint = f"tcp://127.0.0.1:{free_port()}"
        process = start_serve(endpoint, tiny_weights, tmp_path / "serve.log")
        try:
            wait_ready(endpoint, process, tmp_path / "serve.log")
            assert cli_main(["enhance", opts.input, opts.output, "--mix", "0", "--scale",
                             "0.5", "--bit-depth", "float", "--quiet", "--server", endpoint]) == 0
        finally:
            stop_process(process)
    else:
        render_sequence(opts, show_progress=False)
    out = read_image(tmp_path / "out" / "c.0001.exr")[0]
    assert out.shape == (16, 24, 3)
    np.testing.assert_allclose(out, 0.5, atol=2e-3)


def test_alpha_extras_and_metadata_survive(tmp_path: Path, tiny_weights: str) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.random((33, 47, 5), dtype=np.float32)
    attrs = {"PixelAspectRatio": 2.0, "Make": "RED", "oiio:ColorSpace": "lin_ap1_scene"}
    write_image(tmp_path / "s.1001.exr", pixels, "half", ("R", "G", "B", "A", "Z"), attrs)
    render_sequence(RenderOptions(str(tmp_path / "s.####.exr"), str(tmp_path / "o" / "s.####.exr"),
                                  weights=tiny_weights), show_progress=False)
    src, _ = read_image(tmp_path / "s.1001.exr")
    out, spec = read_image(tmp_path / "o" / "s.1001.exr")
    assert out.shape == src.shape
    assert tuple(spec.channelnames) == ("R", "G", "B", "A", "Z")
    np.testing.assert_array_equal(out[..., 3:], src[..., 3:])
    assert not np.allclose(out[..., :3], src[..., :3], atol=1e-2)
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0
    assert spec.get_string_attribute("Make") == "RED"
    assert spec.get_string_attribute("oiio:ColorSpace") == "lin_ap1_scene"  # ACEScg in, ACEScg out


def test_frame_range_selects_frames(tmp_path: Path, tiny_weights: str) -> None:
    for f in range(1, 6):
        write_image(tmp_path / f"c.{f:04d}.png", _textured(20, 24, seed=f), "uint8", ("R", "G", "B"))
    summary = render_sequence(RenderOptions(str(tmp_path / "c.%04d.png"), str(tmp_path / "out") + "/",
                                            weights=tiny_weights, frames="2-4"), show_progress=False)
    assert summary["frames_written"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.0002.png", "c.0003.png", "c.0004.png"]


@pytest.mark.parametrize("options, message", [
    ({"scale": 0.0}, "scale"), ({"scale": 1.5}, "scale"), ({"mix": -0.1}, "mix"), ({"batch": 0}, "batch"),
])
def test_option_validation(options: dict, message: str) -> None:
    from nightgrade.colorpipeline.errors import UsageError

    with pytest.raises(UsageError, match=message):
        RenderOptions("in.exr", "out.exr", **options)


def test_tile_overrides_keep_the_checkpoint_ratio_and_scale_for_proxies(tiny_weights: str) -> None:
    from nightgrade.server.render.pipeline import tile_config_for

    engine = Engine.from_checkpoint(tiny_weights)  # tiles 64 / 160 / 32
    assert tile_config_for(RenderOptions("i", "o"), engine) == TileConfig(64, 160, 32)
    assert tile_config_for(RenderOptions("i", "o", tile=32), engine) == TileConfig(32, 80, None)
    assert tile_config_for(RenderOptions("i", "o", tile=32, region=200), engine) == TileConfig(32, 200, None)
    assert tile_config_for(RenderOptions("i", "o", scale=0.5), engine) == TileConfig(32, 80, 16)
    tiny = tile_config_for(RenderOptions("i", "o", scale=0.01), engine)
    assert tiny.local == engine.generator_config.min_size
    with pytest.raises(UsageError, match="tile 36"):
        tile_config_for(RenderOptions("i", "o", tile=36), engine)
