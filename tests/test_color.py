"""Colour management: config choice, colourspace resolution, conversions and the HDR rule."""
from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest

from nightgrade.colorpipeline import color
from nightgrade.colorpipeline.color import (
    BUILTIN_CONFIG,
    ColorConfig,
    canonical_name,
    convert,
    describe_colorspaces,
    load_config,
    resolve_colorspace,
    restore_highlights,
    split_highlights,
)
from nightgrade.colorpipeline.errors import ColorError
from nightgrade.server.cli.flags import flag

STUDIO = ColorConfig(BUILTIN_CONFIG)
LINEAR = "Linear Rec.709 (sRGB)"
SRGB = "sRGB Encoded Rec.709 (sRGB)"
AP0 = (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767)


@pytest.fixture(autouse=True)
def no_ocio_env(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)


def hdr_frame(height: int = 32, width: int = 48) -> np.ndarray:
    """A scene-linear frame: a ramp to 50.0 with small negatives, as night footage with lamps has."""
    rng = np.random.default_rng(7)
    ramp = np.geomspace(1e-4, 50.0, height * width).reshape(height, width)
    frame = np.stack([ramp, ramp[::-1], rng.uniform(0.0, 2.0, (height, width))], axis=-1)
    frame[::5, ::3, 1] = -0.02
    frame[1::7, ::2, 2] = -0.003
    return frame.astype(np.float32)


def mini_config(tmp_path) -> str:
    config = ocio.Config.CreateRaw()
    space = ocio.ColorSpace(name="scene light")
    space.addAlias("lin_rec709_scene")
    config.addColorSpace(space)
    path = tmp_path / "mini.ocio"
    config.serialize(str(path))
    return str(path)


# ---- config choice ---------------------------------------------------------------------------

def test_builtin_studio_config_is_default_and_cached():
    first = load_config(None)
    assert first.getName().startswith("studio-config")
    assert load_config(None) is first
    assert load_config(BUILTIN_CONFIG) is first


def test_ocio_env_then_explicit_path_take_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("OCIO", mini_config(tmp_path))
    assert resolve_colorspace(ColorConfig(), None, None, "exr") == "scene light"
    assert resolve_colorspace(STUDIO, None, None, "exr") == LINEAR


@pytest.mark.parametrize("origin", ["--ocio-config", "$OCIO"])
def test_unloadable_config_is_one_line_color_error_naming_path(tmp_path, monkeypatch, origin):
    broken = tmp_path / "broken.ocio"
    broken.write_text("ocio_profile_version: 2\nroles: [\n")
    config = ColorConfig(str(broken)) if origin == "--ocio-config" else ColorConfig()
    if origin == "$OCIO":
        monkeypatch.setenv("OCIO", str(broken))
    with pytest.raises(ColorError) as err:
        resolve_colorspace(config, "ACEScg", None, "exr")
    message = err.value.naming(flag)  # as the CLI prints it
    assert str(broken) in message and origin in message and "\n" not in message


def test_missing_config_file_is_color_error():
    with pytest.raises(ColorError, match="nowhere/config.ocio"):
        load_config("/nowhere/config.ocio")


def test_config_without_default_space_says_what_it_tried(tmp_path):
    with pytest.raises(ColorError, match="no colourspace for the DPX default.*input_colorspace"):
        resolve_colorspace(ColorConfig(mini_config(tmp_path)), None, None, "dpx")


# ---- resolving names -------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ("ACEScg", "ACEScg"), ("lin_ap1", "ACEScg"), ("acescct", "ACEScct"),
    ("scene_linear", "ACEScg"), ("srgb_tx", SRGB), ("arri_logc4", "ARRI LogC4"),
    ("Linear", LINEAR), ("sRGB", SRGB), ("Rec709", "Camera Rec.709"),
    ("GammaCorrected2.2", "Gamma 2.2 Encoded Rec.709"), ("g24_rec709", "Gamma 2.4 Encoded Rec.709"),
])
def test_names_aliases_roles_and_oiio_legacy_names_resolve(given, expected):
    assert canonical_name(STUDIO, given) == expected


def test_user_name_beats_metadata_and_default():
    assert resolve_colorspace(STUDIO, "ACEScct", "lin_rec709_scene", "exr") == "ACEScct"


def test_unknown_name_lists_close_matches_and_the_flag():
    with pytest.raises(ColorError) as err:
        resolve_colorspace(STUDIO, "ACEScgg", None, "exr")
    message = err.value.naming(flag)
    assert "'ACEScgg'" in message and "'ACEScg'" in message and "--input-colorspace" in message
    assert "\n" not in message


@pytest.mark.parametrize("fmt, is_float, expected", [
    ("exr", True, LINEAR), (".EXR", True, LINEAR), ("openexr", True, LINEAR),
    ("png", False, SRGB), ("jpg", False, SRGB), ("tif", False, SRGB),
    ("tiff", True, LINEAR), ("dpx", False, "Gamma 2.4 Encoded Rec.709"), ("pfm", True, LINEAR),
])
def test_format_defaults(fmt, is_float, expected):
    assert resolve_colorspace(STUDIO, None, None, fmt, is_float=is_float) == expected


def test_unknown_format_without_name_is_color_error():
    with pytest.raises(ColorError, match="format 'bmp'.*input_colorspace"):
        resolve_colorspace(STUDIO, None, None, "bmp", source="a.bmp")


def test_exr_chromaticities_pick_linear_primaries():
    assert resolve_colorspace(STUDIO, None, None, "exr", chromaticities=AP0) == "ACES2065-1"
    odd = (0.5, 0.3, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329)
    with pytest.raises(ColorError, match="chromaticities.*x.exr"):
        resolve_colorspace(STUDIO, None, None, "exr", chromaticities=odd, source="x.exr")


def _written_metadata(path, fmt: str, attributes: dict) -> tuple[str | None, object]:
    """Write a 4x4 file with OpenImageIO 3.2 and return what it reads back (colourspace, chroma)."""
    spec = oiio.ImageSpec(4, 4, 3, fmt)
    for key, value in attributes.items():
        if key == "chromaticities":
            spec.attribute(key, "float[8]", value)
        else:
            spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    out.write_image(np.full((4, 4, 3), 0.25, np.float32))
    out.close()
    read = oiio.ImageInput.open(str(path))
    back = read.spec()
    read.close()
    return back.getattribute("oiio:ColorSpace"), back.getattribute("chromaticities")


@pytest.mark.parametrize("name, fmt, attributes, expected", [
    ("plain.png", "uint8", {}, SRGB),
    ("deep.png", "uint16", {"oiio:ColorSpace": "g22_rec709"}, "Gamma 2.2 Encoded Rec.709"),
    ("plain.jpg", "uint8", {}, SRGB),
    ("plain.exr", "half", {}, LINEAR),
    ("cg.exr", "half", {"oiio:ColorSpace": "ACEScg"}, "ACEScg"),
    ("aces.exr", "half", {"chromaticities": AP0}, "ACES2065-1"),
    ("plain.tif", "uint16", {}, SRGB),
    ("srgb.tif", "uint8", {"oiio:ColorSpace": "sRGB"}, SRGB),
    ("video.dpx", "uint16", {"dpx:Transfer": "ITU-R 709-4"}, "Gamma 2.4 Encoded Rec.709"),
    ("lin.dpx", "uint16", {"dpx:Transfer": "Linear"}, LINEAR),
    ("plain.dpx", "uint16", {}, "Gamma 2.4 Encoded Rec.709"),
    ("plain.pfm", "float", {}, LINEAR),
])
def test_what_openimageio_writes_resolves(tmp_path, name, fmt, attributes, expected):
    path = tmp_path / name
    metadata, chromaticities = _written_metadata(path, fmt, attributes)
    resolved = resolve_colorspace(STUDIO, None, metadata, path.suffix, is_float=fmt != "uint8"
                                  and fmt != "uint16", chromaticities=chromaticities,
                                  source=str(path))
    assert resolved == expected


def test_log_dpx_metadata_asks_user_to_name_the_space(tmp_path):
    path = tmp_path / "scan.dpx"
    metadata, _ = _written_metadata(path, "uint16", {"dpx:Transfer": "Logarithmic"})
    with pytest.raises(ColorError) as err:
        resolve_colorspace(STUDIO, None, metadata, "dpx", source=str(path))
    assert "KodakLog" in str(err.value) and str(path) in str(err.value)
    assert "--input-colorspace" in err.value.naming(flag)
    assert resolve_colorspace(STUDIO, "ADX10", metadata, "dpx") == "ADX10"


# ---- conversions -----------------------------------------------------------------------------

def test_srgb_transform_extends_beyond_zero_and_one():
    lin = np.array([[2.0, 50.0, -0.01]], np.float32)
    encoded = convert(lin, LINEAR, SRGB, STUDIO)
    # OCIO derives the toe slope (12.9232) from gamma and offset so both pieces meet; the sRGB
    # standard rounds it to 12.92.
    expected = [1.055 * 2.0 ** (1 / 2.4) - 0.055, 1.055 * 50.0 ** (1 / 2.4) - 0.055, -0.129232]
    np.testing.assert_allclose(encoded[0], expected, rtol=1e-5)


def test_known_values():
    np.testing.assert_allclose(convert(np.array([[0.18, 0.18, 0.18]], np.float32), "ACEScg",
                                       "ACEScct", STUDIO), 0.4135884, rtol=1e-5)
    np.testing.assert_allclose(convert(np.array([0.5, 0.5, 0.5], np.float32), LINEAR, SRGB,
                                       STUDIO), 0.7353569, rtol=1e-5)


def test_hdr_frame_survives_model_round_trip_with_identity_model():
    linear = hdr_frame()
    working = convert(linear, LINEAR, SRGB, STUDIO)
    in_range, excess = split_highlights(working)
    assert in_range.min() >= 0.0 and in_range.max() <= 1.0
    assert excess.max() > 1.0 and excess.min() < 0.0
    back = convert(restore_highlights(in_range, excess), SRGB, LINEAR, STUDIO)
    np.testing.assert_allclose(back, linear, rtol=1e-5, atol=1e-6)


def test_restore_adds_excess_to_a_changed_model_output():
    working = np.array([[[0.5, 3.0, -0.2]]], np.float32)
    in_range, excess = split_highlights(working)
    brighter = in_range * 1.5
    np.testing.assert_allclose(restore_highlights(brighter, excess), [[[0.75, 3.5, -0.2]]])


@pytest.mark.parametrize("space", [
    "ACEScg", "ACEScct", LINEAR, SRGB, "ARRI LogC4", "S-Log3 S-Gamut3.Cine", "ACES2065-1",
    "Gamma 2.4 Encoded Rec.709", "Linear Rec.2020",
])
def test_hdr_round_trips_through_named_spaces(space):
    scene = convert(hdr_frame(), LINEAR, "ACEScg", STUDIO)
    encoded = convert(scene, "ACEScg", space, STUDIO)
    if space != "ACEScg":
        assert not np.allclose(encoded, scene)
    np.testing.assert_allclose(convert(encoded, space, "ACEScg", STUDIO), scene,
                               rtol=5e-5, atol=1e-6)


def test_convert_never_modifies_input_and_returns_new_float32():
    frame = hdr_frame()
    before = frame.copy()
    out = convert(frame, LINEAR, "ACEScg", STUDIO)
    same = convert(frame, LINEAR, LINEAR, STUDIO)
    assert out.dtype == np.float32 and out is not frame and same is not frame
    np.testing.assert_array_equal(frame, before)
    np.testing.assert_array_equal(same, frame)
    np.testing.assert_array_equal(convert(frame, "lin_ap1", "ACEScg", STUDIO), frame)


def test_threaded_chunks_match_single_thread():
    frame = np.random.default_rng(3).uniform(-0.1, 8.0, (600, 500, 3)).astype(np.float32)
    one = convert(frame, "ACEScg", "ARRI LogC4", STUDIO, threads=1)
    two = convert(frame, "ACEScg", "ARRI LogC4", STUDIO, threads=2)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one[-1:, -1:], convert(frame[-1:, -1:], "ACEScg",
                                                         "ARRI LogC4", STUDIO))


def test_convert_rejects_non_rgb_and_unknown_names():
    with pytest.raises(ValueError, match="RGB"):
        convert(np.zeros((4, 4, 4), np.float32), LINEAR, SRGB, STUDIO)
    with pytest.raises(ColorError, match="'ACEScgg'"):
        convert(np.zeros((4, 4, 3), np.float32), "ACEScgg", SRGB, STUDIO)


def test_split_does_not_alias_and_restore_checks_shapes():
    working = hdr_frame(4, 4)
    in_range, excess = split_highlights(working)
    in_range[:] = 0.0
    assert working.max() > 1.0
    np.testing.assert_array_equal(excess + np.clip(working, 0, 1), working)
    with pytest.raises(ValueError, match="differ"):
        restore_highlights(in_range[:2], excess)


def test_describe_colorspaces_lists_names_aliases_and_roles():
    lines = describe_colorspaces(STUDIO)
    acescg = [line for line in lines if line.startswith("ACEScg  ")]
    assert len(acescg) == 1 and "lin_ap1" in acescg[0] and "scene-linear" in acescg[0]
    assert "role scene_linear -> ACEScg" in lines


def test_output_colourspace_rule_keeps_what_the_output_format_holds() -> None:
    """Issue 19 item 2: float files hold linear values, integer files display/log encodings."""
    cfg = color.ColorConfig()
    rule = color.output_colorspace
    assert rule(cfg, "ACEScg", ".exr", is_float=True)[0] == "ACEScg"
    assert rule(cfg, "ACEScct", ".dpx", is_float=False)[0] == "ACEScct"
    assert rule(cfg, "sRGB Encoded Rec.709 (sRGB)", ".png", is_float=False)[0] == "sRGB Encoded Rec.709 (sRGB)"
    assert rule(cfg, "ACEScg", ".dpx", is_float=False)[0] == "Gamma 2.4 Encoded Rec.709"
    assert rule(cfg, "ACEScg", ".tif", is_float=False)[0] == "sRGB Encoded Rec.709 (sRGB)"
    assert rule(cfg, "sRGB Encoded Rec.709 (sRGB)", ".tif", is_float=True)[0] == "Linear Rec.709 (sRGB)"
    assert rule(cfg, "Gamma 2.4 Encoded Rec.709", ".exr", is_float=True)[0] == "Linear Rec.709 (sRGB)"
    assert rule(cfg, "Raw", ".png", is_float=False)[0] == "Raw"  # data is never converted
    name, why = rule(cfg, "ACEScg", ".png", is_float=False)
    assert "PNG default" in why and "linear" in why
    assert color.is_linear(cfg, "ACEScg") and not color.is_linear(cfg, "ACEScct")
    # through the daemon (OFX hosts, --server): the host reads the result in the space it sent
    assert rule(cfg, "Gamma 2.4 Encoded Rec.709", color.BUFFER, is_float=True)[0] == "Gamma 2.4 Encoded Rec.709"
    assert rule(cfg, "ACEScg", color.BUFFER, is_float=True)[0] == "ACEScg"
