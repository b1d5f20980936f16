"""Frame reading/writing: formats and depths, metadata, pass-through channels, errors, atomic writes."""
from __future__ import annotations

import errno
import os

import numpy as np
import OpenImageIO as oiio
import pytest

from nightgrade.colorpipeline.errors import InputError, OutputError, UsageError
from nightgrade.colorpipeline.io import imageio
from nightgrade.colorpipeline.io.frame import Frame
from nightgrade.colorpipeline.io.imageio import WriteOptions, check_output, read_frame, read_header, write_frame

H, W = 24, 32


def picture(channels=3, seed=0):
    """Smooth ramps plus noise in [0, 1]: exercises every code value region of a low bit depth."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, :, None]
    return np.clip(ramp * 0.7 + rng.random((H, W, channels), dtype=np.float32) * 0.3, 0, 1).astype(np.float32)


def write_raw(path, pixels, names, pixel_type="half", channel_types=None, **attributes):
    """Write a test input with OIIO directly, so reading is not tested through our own writer."""
    height, width, channels = pixels.shape
    spec = oiio.ImageSpec(width, height, channels, pixel_type)
    spec.channelnames = tuple(names)
    if channel_types:
        spec.channelformats = tuple(oiio.TypeDesc(t) for t in channel_types)
    for name, value in attributes.items():
        spec.attribute(name.replace("__", ":"), value)
    # Store alpha as given: without this OIIO divides PNG/TIFF colour by alpha on the way out.
    spec.attribute("oiio:UnassociatedAlpha", 1)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, np.float32))
    assert out.close()


def stored(path):
    """(pixel type, bits per sample, compression) as the file itself declares them."""
    spec = read_header(str(path))
    return str(spec.format), spec.get_int_attribute("oiio:BitsPerSample", 0), spec.get_string_attribute("compression")


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if ".tmp" in name)


# --- formats and depths -------------------------------------------------------------------------

@pytest.mark.parametrize("ext, depth, pixel_type, bits, tolerance", [
    ("exr", "half", "half", 0, 2.5e-4),
    ("exr", "float", "float", 0, 0.0),
    ("dpx", "10", "uint16", 10, 0.5 / 1023 + 1e-6),
    ("dpx", "12", "uint16", 12, 0.5 / 4095 + 1e-6),
    ("dpx", "8", "uint8", 8, 0.5 / 255 + 1e-6),
    ("tif", "16", "uint16", 16, 0.5 / 65535 + 1e-6),
    ("tif", "8", "uint8", 8, 0.5 / 255 + 1e-6),
    ("tif", "float", "float", 0, 0.0),
    ("png", "16", "uint16", 0, 0.5 / 65535 + 1e-6),  # PNG headers carry no oiio:BitsPerSample
    ("png", "8", "uint8", 0, 0.5 / 255 + 1e-6),
])
def test_round_trip_each_format_and_depth(tmp_path, ext, depth, pixel_type, bits, tolerance):
    source = Frame.from_array(picture(), ("R", "G", "B"), depth="float")
    path = tmp_path / f"out.{ext}"
    write_frame(str(path), source, WriteOptions(bit_depth=depth))
    back = read_frame(str(path))
    assert back.rgb.shape == (H, W, 3)
    # Nearest-code rounding: error at most half a code step at every depth (DPX included).
    assert np.abs(back.rgb - source.rgb).max() <= tolerance
    assert back.source_depth == depth
    pixel, stored_bits, _ = stored(path)
    assert pixel == pixel_type
    if bits:
        assert stored_bits == bits


def test_reading_does_not_depend_on_our_writer(tmp_path):
    pixels = picture(4)
    write_raw(tmp_path / "in.png", pixels, ("R", "G", "B", "A"), "uint16")
    frame = read_frame(str(tmp_path / "in.png"))
    assert frame.pixels.dtype == np.float32 and frame.pixels.shape == (H, W, 4)
    assert (frame.rgb_indices, frame.alpha_index, frame.source_depth) == ((0, 1, 2), 3, "16")
    assert np.abs(frame.pixels - pixels).max() <= 0.5 / 65535 + 1e-6


@pytest.mark.parametrize("source_ext, source_type, out_ext, expected", [
    ("exr", "float", "exr", "float"),   # the input's depth when the output can store it
    ("exr", "half", "dpx", "10"),       # else the per-format default
    ("png", "uint8", "png", "8"),
    ("png", "uint8", "exr", "half"),
    ("exr", "half", "tif", "16"),
    ("exr", "half", "png", "16"),
])
def test_default_depth(tmp_path, source_ext, source_type, out_ext, expected):
    write_raw(tmp_path / f"in.{source_ext}", picture(), "RGB", source_type)
    write_frame(str(tmp_path / f"out.{out_ext}"), read_frame(str(tmp_path / f"in.{source_ext}")))
    assert read_frame(str(tmp_path / f"out.{out_ext}")).source_depth == expected


def test_unsupported_depth_for_format(tmp_path):
    frame = Frame.from_array(picture())
    with pytest.raises(OutputError, match=r"PNG cannot store half bit depth; choose 8, 16$"):
        write_frame(str(tmp_path / "o.png"), frame, WriteOptions(bit_depth="half"))
    with pytest.raises(UsageError, match="bit depth '11' is not one of"):
        WriteOptions(bit_depth="11")
    assert os.listdir(tmp_path) == []


def test_compression_choice_inheritance_and_rejection(tmp_path):
    write_raw(tmp_path / "in.exr", picture(), "RGB", compression="piz")
    frame = read_frame(str(tmp_path / "in.exr"))
    write_frame(str(tmp_path / "kept.exr"), frame)
    assert stored(tmp_path / "kept.exr")[2] == "piz"
    for name in ("dwaa", "none", "zip"):
        write_frame(str(tmp_path / f"{name}.exr"), frame, WriteOptions(compression=name))
        assert stored(tmp_path / f"{name}.exr")[2] == name
    write_frame(str(tmp_path / "lzw.tif"), frame, WriteOptions(compression="lzw"))
    assert stored(tmp_path / "lzw.tif")[2] == "lzw"
    write_frame(str(tmp_path / "default.tif"), frame)  # piz is not a TIFF compression: TIFF default
    assert stored(tmp_path / "default.tif")[2] == "zip"
    with pytest.raises(OutputError, match=r"OpenEXR compression 'bogus' is not supported; choose none, rle"):
        write_frame(str(tmp_path / "bad.exr"), frame, WriteOptions(compression="bogus"))
    with pytest.raises(OutputError, match=r"DPX compression 'zip' is not supported; choose none"):
        write_frame(str(tmp_path / "bad.dpx"), frame, WriteOptions(compression="zip"))


# --- metadata -----------------------------------------------------------------------------------

def metadata_exr(path, colorspace="ACEScg"):
    """An EXR whose 20x12 data window sits at (5, 3) in a 32x24 display window, with metadata."""
    pixels = picture()[:12, :20]
    spec = oiio.ImageSpec(20, 12, 3, "half")
    spec.x, spec.y = 5, 3
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, 32, 24
    spec.attribute("smpte:TimeCode", oiio.TypeTimeCode, (0x10203040, 0))  # 10:20:30:40
    spec.attribute("PixelAspectRatio", 2.0)
    spec.attribute("Make", "ARRI")
    spec.attribute("Exif:FNumber", 2.8)
    spec.set_colorspace(colorspace)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec) and out.write_image(pixels) and out.close()
    return pixels


def test_metadata_exr_to_exr(tmp_path):
    metadata_exr(tmp_path / "in.exr")
    source = read_frame(str(tmp_path / "in.exr"))
    write_frame(str(tmp_path / "out.exr"), source.with_rgb(source.rgb * 0.5))
    header = read_header(str(tmp_path / "out.exr"))
    assert tuple(header.getattribute("smpte:TimeCode")) == (0x10203040, 0)
    assert header.getattribute("PixelAspectRatio") == 2.0
    assert header.getattribute("Make") == "ARRI"
    assert header.getattribute("Exif:FNumber") == pytest.approx(2.8)
    assert header.getattribute("oiio:ColorSpace") == source.header.getattribute("oiio:ColorSpace")
    assert header.getattribute("oiio:ColorSpace") not in (None, "")
    assert (header.x, header.y, header.width, header.height) == (5, 3, 20, 12)
    assert (header.full_x, header.full_y, header.full_width, header.full_height) == (0, 0, 32, 24)


def test_metadata_exr_to_dpx(tmp_path):
    pixels = metadata_exr(tmp_path / "in.exr")
    write_frame(str(tmp_path / "out.dpx"), read_frame(str(tmp_path / "in.exr")))
    back = read_frame(str(tmp_path / "out.dpx"))
    header = back.header
    assert tuple(header.getattribute("smpte:TimeCode")) == (0x10203040, 0)
    assert header.getattribute("PixelAspectRatio") == 2.0
    assert (header.x, header.y, header.width, header.height) == (5, 3, 20, 12)
    assert (header.full_width, header.full_height) == (32, 24)
    assert np.abs(back.rgb - pixels).max() < 1e-3


def test_metadata_exr_to_tiff_fills_the_display_window(tmp_path):
    pixels = metadata_exr(tmp_path / "in.exr")
    write_frame(str(tmp_path / "out.tif"), read_frame(str(tmp_path / "in.exr")), WriteOptions(bit_depth="float"))
    back = read_frame(str(tmp_path / "out.tif"))
    header = back.header
    assert header.getattribute("Make") == "ARRI"  # OIIO 3.2 writes no Exif block to TIFF; Make is a TIFF tag
    assert header.getattribute("PixelAspectRatio") == 2.0
    # TIFF has no display window: the frame is written at display size with the data window in place.
    assert (header.x, header.y, header.width, header.height) == (0, 0, 32, 24)
    half = np.float16(pixels).astype(np.float32)
    np.testing.assert_array_equal(back.rgb[3:15, 5:25], half)
    assert not back.rgb[:3].any() and not back.rgb[:, :5].any() and not back.rgb[15:].any()


# --- alpha and extra channels -------------------------------------------------------------------

def test_alpha_and_extra_channels_pass_through_exr(tmp_path):
    rng = np.random.default_rng(1)
    pixels = np.concatenate([picture(4), rng.random((H, W, 3), dtype=np.float32) * 5000], axis=2)
    names = ("R", "G", "B", "A", "Z", "diffuse.R", "diffuse.G")
    types = ("half",) * 4 + ("float",) * 3
    write_raw(tmp_path / "in.exr", pixels, names, "half", channel_types=types)
    frame = read_frame(str(tmp_path / "in.exr"))
    assert frame.rgb_indices == (0, 1, 2) and frame.alpha_index == 3
    assert frame.channel_depths == types
    write_frame(str(tmp_path / "out.exr"), frame.with_rgb(frame.rgb * 0.25))
    back = read_frame(str(tmp_path / "out.exr"))
    assert back.channel_names == names and back.channel_depths == types
    np.testing.assert_array_equal(back.pixels[:, :, 3:], frame.pixels[:, :, 3:])  # float AOVs stay float
    np.testing.assert_allclose(back.rgb, frame.rgb * 0.25, atol=1e-4)


def test_channels_found_by_name_in_any_order(tmp_path):
    pixels = picture(4)
    written = ("alpha", "blue", "green", "red")
    write_raw(tmp_path / "in.exr", pixels, written, "float")
    frame = read_frame(str(tmp_path / "in.exr"))
    names = frame.channel_names
    assert [names[i] for i in frame.rgb_indices] == ["red", "green", "blue"]
    assert names[frame.alpha_index] == "alpha"
    np.testing.assert_array_equal(frame.alpha, pixels[:, :, written.index("alpha")])
    np.testing.assert_array_equal(frame.rgb[:, :, 0], pixels[:, :, written.index("red")])


def test_unassociated_alpha_is_not_premultiplied(tmp_path):
    pixels = picture(4)
    pixels[:4, :, 3] = 0.0  # colour under zero alpha must survive a round trip
    pixels[4:8, :, 3] = 0.5
    write_raw(tmp_path / "in.png", pixels, ("R", "G", "B", "A"), "uint16")
    frame = read_frame(str(tmp_path / "in.png"))
    assert np.abs(frame.pixels - pixels).max() <= 0.5 / 65535 + 1e-6
    write_frame(str(tmp_path / "out.png"), frame)
    assert np.abs(read_frame(str(tmp_path / "out.png")).pixels - pixels).max() <= 0.5 / 65535 + 1e-6


def test_extra_channels_refused_where_format_cannot_hold_them(tmp_path):
    write_raw(tmp_path / "in.exr", picture(5), ("R", "G", "B", "A", "Z"), "half")
    frame = read_frame(str(tmp_path / "in.exr"))
    for ext, name in (("png", "PNG"), ("dpx", "DPX")):
        with pytest.raises(OutputError, match=rf"{name} holds only RGB and alpha, not Z; write .exr or .tif"):
            write_frame(str(tmp_path / f"out.{ext}"), frame)
        write_frame(str(tmp_path / f"out.{ext}"), frame, WriteOptions(drop_extra_channels=True))
        back = read_frame(str(tmp_path / f"out.{ext}"))
        assert back.channel_names == ("R", "G", "B", "A")
        assert np.abs(back.pixels[..., 3] - frame.pixels[..., 3]).max() < 1e-3


@pytest.mark.parametrize("names", [("Y",), ("A", "Y"), ("U", "V", "W", "X", "Y")])
def test_unsupported_channel_layout(tmp_path, names):
    write_raw(tmp_path / "in.exr", picture(len(names)), names, "half")
    expected = rf"in\.exr has {len(names)} channel\(s\) \(.+\); NightGrade needs colour"
    with pytest.raises(InputError, match=expected) as err:
        read_frame(str(tmp_path / "in.exr"))
    listed = str(err.value).split("(")[2].split(")")[0]  # OIIO may reorder channels on read
    assert sorted(listed.split(",")) == sorted(names)


def test_three_unnamed_channels_are_colour(tmp_path):
    write_raw(tmp_path / "in.exr", picture(3), ("X", "Y", "Z"), "half")
    assert read_frame(str(tmp_path / "in.exr")).rgb_indices == (0, 1, 2)


# --- corrupt input ------------------------------------------------------------------------------

@pytest.mark.parametrize("ext, pixel_type", [("exr", "half"), ("png", "uint16")])
def test_truncated_file(tmp_path, ext, pixel_type):
    path = tmp_path / f"cut.{ext}"
    write_raw(path, picture(), "RGB", pixel_type)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"^frame 7 \(.*cut\.{ext}\) is corrupt or truncated \(.+\); re-render"):
        read_frame(str(path), frame=7)


def test_garbage_file(tmp_path):
    (tmp_path / "junk.exr").write_bytes(b"hello" * 10)
    with pytest.raises(InputError, match=r"junk\.exr cannot be read, it is corrupt or not an image \(.+\)$"):
        read_frame(str(tmp_path / "junk.exr"))


# --- output errors and atomic writes ------------------------------------------------------------

def test_unknown_output_extension(tmp_path):
    frame = Frame.from_array(picture())
    with pytest.raises(OutputError, match=r"extension '\.jpg' is not an output format; use \.exr, \.dpx"):
        write_frame(str(tmp_path / "out.jpg"), frame)
    with pytest.raises(OutputError, match="it has no extension to name a format"):
        check_output(str(tmp_path / "out"))


def test_missing_or_bad_output_folder(tmp_path):
    frame = Frame.from_array(picture())
    with pytest.raises(OutputError, match=r"folder .*missing does not exist; create it first"):
        write_frame(str(tmp_path / "missing" / "out.exr"), frame)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match=r"file is a file, not a folder"):
        write_frame(str(tmp_path / "file" / "out.exr"), frame)


def test_read_only_output_folder(tmp_path, monkeypatch):
    frame = Frame.from_array(picture())
    target = tmp_path / "locked"
    target.mkdir()
    target.chmod(0o555)
    real_access = os.access
    # Root ignores permission bits, so report the folder as read-only the way a normal user sees it.
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(target) else real_access(p, mode))
    with pytest.raises(OutputError, match=r"folder .*locked is read-only; fix its permissions or write elsewhere"):
        write_frame(str(target / "out.exr"), frame)
    with pytest.raises(OutputError, match="read-only"):
        check_output(str(target / "out.exr"))
    target.chmod(0o755)
    assert os.listdir(target) == []


def test_successful_write_leaves_no_temp_file(tmp_path):
    write_frame(str(tmp_path / "out.exr"), Frame.from_array(picture()))
    assert os.listdir(tmp_path) == ["out.exr"]


@pytest.mark.parametrize("fail_at", ["write_image", "fsync", "replace"])
def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch, fail_at):
    old = tmp_path / "old.exr"
    write_frame(str(old), Frame.from_array(picture(seed=1)))
    before = old.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail_at == "write_image":  # OIIO reports failure after the temp file was opened and started
        monkeypatch.setattr(oiio.ImageOutput, "write_image", lambda self, *a, **k: False)
    else:
        monkeypatch.setattr(os, fail_at, disk_full)
    frame = Frame.from_array(picture(seed=2))
    with pytest.raises(OutputError, match=r"^cannot write .*\.exr"):
        write_frame(str(tmp_path / "new.exr"), frame)
    with pytest.raises(OutputError, match=r"^cannot write .*old\.exr"):
        write_frame(str(old), frame)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["old.exr"]
    assert old.read_bytes() == before


def test_check_output_with_sequence_info(tmp_path):
    info = imageio.SequenceInfo(W, H, ("R", "G", "B", "A", "Z"), "half", "in.exr")
    check_output(str(tmp_path / "o.exr"), WriteOptions(compression="dwaa:45"), info)
    with pytest.raises(OutputError, match="PNG holds only RGB and alpha, not Z"):
        check_output(str(tmp_path / "o.png"), WriteOptions(), info)
    check_output(str(tmp_path / "o.png"), WriteOptions(drop_extra_channels=True), info)


# --- the Frame helpers --------------------------------------------------------------------------

def test_frame_is_read_only_and_with_rgb_replaces_only_colour(tmp_path):
    write_raw(tmp_path / "in.exr", picture(4), ("R", "G", "B", "A"), "float")
    frame = read_frame(str(tmp_path / "in.exr"))
    with pytest.raises(ValueError):
        frame.pixels[0, 0, 0] = 1.0
    graded = frame.with_rgb(np.zeros((H, W, 3), np.float32))
    assert not graded.rgb.any()
    np.testing.assert_array_equal(graded.alpha, frame.alpha)
    assert frame.rgb.any()  # the original is untouched
    with pytest.raises(ValueError, match="use resized"):
        frame.with_rgb(np.zeros((H // 2, W // 2, 3), np.float32))


def test_resized_averages_and_scales_windows(tmp_path):
    metadata_exr(tmp_path / "in.exr")
    frame = read_frame(str(tmp_path / "in.exr"))
    proxy = frame.resized(10, 6)
    header = proxy.header
    assert proxy.pixels.shape == (6, 10, 3)
    assert (header.x, header.y, header.width, header.height) == (2, 2, 10, 6)
    assert (header.full_width, header.full_height) == (16, 12)
    block = frame.pixels[:2, :2].mean(axis=(0, 1))
    np.testing.assert_allclose(proxy.pixels[0, 0], block, rtol=1e-5)
    assert tuple(header.getattribute("smpte:TimeCode")) == (0x10203040, 0)
    write_frame(str(tmp_path / "proxy.exr"), proxy)
    assert read_header(str(tmp_path / "proxy.exr")).full_width == 16
