"""Movie files through PyAV (colorpipeline/io/movie.py, server/render/movie.py): colour tags and
range honoured, dailies written whole or not at all, an undecodable codec named in one line."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import ColorError, InputError, OutputError
from nightgrade.colorpipeline.io.movie import MovieWriter, probe_movie, read_movie, tagged_colorspace
from nightgrade.server.cli.main import main
from tests.conftest import write_image

G24 = "Gamma 2.4 Encoded Rec.709"


def _gradient(t: int, height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([x / width, y / height, np.full_like(x, 0.2 + 0.1 * t)], axis=2)


def _write(path: Path, frames: int = 3, colorspace: str = G24, **size) -> list[np.ndarray]:
    pictures = [_gradient(t, **size) for t in range(frames)]
    with MovieWriter(str(path), pictures[0].shape[1], pictures[0].shape[0], Fraction(24), colorspace) as movie:
        for picture in pictures:
            movie.write(picture)
    return pictures


@pytest.mark.parametrize("ext, tolerance", [(".mov", 0.01), (".mp4", 0.03)])
def test_round_trip_keeps_pixels_tags_and_frame_count(tmp_path: Path, ext: str, tolerance: float) -> None:
    written = _write(tmp_path / f"daily{ext}")
    info = probe_movie(str(tmp_path / f"daily{ext}"))
    assert (info.width, info.height, info.frames, info.rate) == (64, 48, 3, 24)
    assert info.codec == {".mov": "prores", ".mp4": "h264"}[ext] and tagged_colorspace(info) == G24
    read = dict(read_movie(str(tmp_path / f"daily{ext}")))
    assert sorted(read) == [1, 2, 3]
    for number, picture in zip((1, 2, 3), written):
        assert float(np.abs(read[number] - picture).mean()) < tolerance
    assert sorted(read_movie(str(tmp_path / f"daily{ext}"), frozenset({2})))[0][0] == 2
    assert [p.name for p in tmp_path.iterdir()] == [f"daily{ext}"]  # no temporary file left


def _constant(path: Path, luma: int, full_range: bool, primaries: int = 1, trc: int = 1) -> None:
    """A grey yuv444p movie written with PyAV directly, tagged as given."""
    container = av.open(str(path), "w")
    stream = container.add_stream("ffv1", rate=24)
    stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv444p"
    ctx = stream.codec_context
    ctx.color_range, ctx.color_primaries, ctx.color_trc, ctx.colorspace = (2 if full_range else 1), primaries, trc, 1
    planes = np.stack([np.full((16, 32), luma), np.full((16, 32), 128), np.full((16, 32), 128)]).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv444p")
    frame.color_range = 2 if full_range else 1
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_range_and_tags_are_honoured(tmp_path: Path) -> None:
    _constant(tmp_path / "full.mkv", 235, full_range=True)
    _constant(tmp_path / "video.mkv", 235, full_range=False)
    full = next(read_movie(str(tmp_path / "full.mkv")))[1]
    video = next(read_movie(str(tmp_path / "video.mkv")))[1]
    assert float(full.mean()) == pytest.approx(235 / 255, abs=6e-3)  # full range: code 235 is 92%
    assert float(video.mean()) == pytest.approx(1.0, abs=6e-3)  # limited range: code 235 is white
    _constant(tmp_path / "srgb.mkv", 100, False, trc=13)
    _constant(tmp_path / "pq.mkv", 100, False, primaries=9, trc=16)
    _constant(tmp_path / "sdr2020.mkv", 100, False, primaries=9, trc=14)
    assert tagged_colorspace(probe_movie(str(tmp_path / "srgb.mkv"))) == "sRGB Encoded Rec.709 (sRGB)"
    assert tagged_colorspace(probe_movie(str(tmp_path / "pq.mkv"))) == "Rec.2100-PQ - Display"
    with pytest.raises(ColorError, match="input_colorspace"):
        tagged_colorspace(probe_movie(str(tmp_path / "sdr2020.mkv")))


def test_undecodable_codec_is_named_in_one_line(tmp_path: Path, capsys) -> None:
    _write(tmp_path / "good.mov")
    data = (tmp_path / "good.mov").read_bytes()
    assert data.count(b"apch") == 1  # ProRes 422 HQ's sample entry
    (tmp_path / "odd.mov").write_bytes(data.replace(b"apch", b"zzzz"))
    with pytest.raises(InputError, match="video codec 'zzzz' cannot be decoded"):
        probe_movie(str(tmp_path / "odd.mov"))
    assert main(["enhance", str(tmp_path / "odd.mov"), str(tmp_path / "out.mov")]) == 3
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'zzzz'" in err and not (tmp_path / "out.mov").exists()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="even width and height"):
        MovieWriter(str(tmp_path / "odd.mp4"), 63, 48, Fraction(24), G24)
    with pytest.raises(OutputError, match="tagged as one of"):
        MovieWriter(str(tmp_path / "lin.mov"), 64, 48, Fraction(24), "ACEScg")
    with pytest.raises(RuntimeError):
        with MovieWriter(str(tmp_path / "cut.mov"), 64, 48, Fraction(24), G24) as movie:
            movie.write(_gradient(0))
            raise RuntimeError("killed mid-render")
    assert list(tmp_path.iterdir()) == []


def test_enhance_dailies_from_frames_and_frames_from_a_movie(tmp_path: Path, tiny_weights: str, capsys) -> None:
    (tmp_path / "in").mkdir()
    for t in range(3):
        write_image(tmp_path / "in" / f"shot.{t + 1:04d}.png", _gradient(t) * 0.3, "uint8", ("R", "G", "B"))
    daily = tmp_path / "daily.mov"
    assert main(["enhance", str(tmp_path / "in" / "shot.####.png"), str(daily), "-w", tiny_weights, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    srgb = "sRGB Encoded Rec.709 (sRGB)"  # a movie holds display encodings: the input's is kept, and tagged
    assert summary["frames_written"] == 3 and summary["colorspaces"]["output"] == srgb
    assert f"nightgrade: colour: {srgb} -> {srgb}" in captured.err
    assert probe_movie(str(daily)).frames == 3 and tagged_colorspace(probe_movie(str(daily))) == srgb
    assert main(["enhance", str(daily), str(tmp_path / "frames" / "d.####.exr"), "-w", tiny_weights,
                 "--frames", "2-3", "--mix", "0"]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["d.0002.exr", "d.0003.exr"]
    assert "-> Linear Rec.709 (sRGB)" in capsys.readouterr().err  # EXR out: linear (the output rule)
    # what a movie cannot do is refused with the way round it
    assert main(["enhance", str(daily), str(tmp_path / "t.mov"), "-w", tiny_weights, "--temporal"]) == 2
    assert "need an image sequence" in capsys.readouterr().err
    assert main(["enhance", str(tmp_path / "in" / "shot.####.png"), str(daily), "-w", tiny_weights]) == 4
    assert "--overwrite" in capsys.readouterr().err
    assert main(["enhance", str(daily), str(tmp_path / "x.mov"), "-w", tiny_weights, "--frames", "9"]) == 2
    assert "frames are 1-3" in capsys.readouterr().err
    assert main(["enhance", str(daily), str(tmp_path / "y.mov"), "-w", tiny_weights, "--bit-depth", "16"]) == 2
    assert "apply to image outputs" in capsys.readouterr().err and not (tmp_path / "y.mov").exists()


def test_a_log_input_becomes_a_tagged_movie(tmp_path: Path, tiny_weights: str, capsys) -> None:
    """ACEScct is an encoding a movie could hold, but no player reads it from tags: the movie
    default (Gamma 2.4 Rec.709) is used and said."""
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "shot.0001.exr", _gradient(0) * 0.3, "half", ("R", "G", "B"))
    assert main(["enhance", str(tmp_path / "in" / "shot.0001.exr"), str(tmp_path / "d.mov"), "-w", tiny_weights,
                 "--input-colorspace", "ACEScct", "--json"]) == 0
    colours = json.loads(capsys.readouterr().out)["colorspaces"]
    assert colours["output"] == G24 and "movie default" in colours["output_rule"]
    assert tagged_colorspace(probe_movie(str(tmp_path / "d.mov"))) == G24
