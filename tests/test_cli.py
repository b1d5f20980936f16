"""`nightgrade` command line: exit codes, one-line errors, nothing half-written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from nightgrade.colorpipeline.io.imageio import read_frame
from nightgrade.server.cli.main import main
from tests.conftest import write_image


def _sequence(folder: Path, frames=range(1, 4), size=(24, 32), ext="exr", pixel_type="half") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for f in frames:
        write_image(folder / f"shot.{f:04d}.{ext}", rng.random((*size, 3), dtype=np.float32) * 0.3,
                    pixel_type, ("R", "G", "B"))
    return str(folder / f"shot.####.{ext}")


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("nightgrade:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("nightgrade: error: ")
    for needle in needles:
        assert needle in lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_enhance_json_summary(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in")
    code, out, err = _run(["enhance", src, str(tmp_path / "out" / "e.####.exr"), "-w", tiny_weights, "--json"],
                          capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames_written"] == 3 and summary["frames"] == [1, 3]
    assert summary["colorspaces"]["working"] == "sRGB Encoded Rec.709 (sRGB)"
    assert summary["tiles"]["per_frame"] > 0
    assert _files(tmp_path / "out") == ["e.0001.exr", "e.0002.exr", "e.0003.exr"]


def test_missing_frame(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", frames=[1, 2, 4])
    code, _, err = _run(["enhance", src, str(tmp_path / "out") + "/", "-w", tiny_weights, "--frames", "1-4"], capsys)
    assert code == 3
    _assert_one_line_error(err, "frame 3", "shot.0003.exr")
    assert _files(tmp_path / "out") == []


def test_size_change_inside_sequence_writes_nothing(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", frames=[1, 2])
    _sequence(tmp_path / "in", frames=[3], size=(25, 32))
    code, _, err = _run(["enhance", src, str(tmp_path / "out") + "/", "-w", tiny_weights], capsys)
    assert code == 3
    _assert_one_line_error(err, "shot.0003.exr", "32x25", "same size")
    assert _files(tmp_path / "out") == []


def test_truncated_frame_stops_with_complete_earlier_frames_only(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", size=(64, 64))
    bad = tmp_path / "in" / "shot.0002.exr"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    code, _, err = _run(["enhance", src, str(tmp_path / "out") + "/", "-w", tiny_weights], capsys)
    assert code == 3
    _assert_one_line_error(err, "shot.0002.exr", "corrupt or truncated")
    assert _files(tmp_path / "out") == ["shot.0001.exr"]  # no temp file, no partial frame 2
    assert "frame 1 done (1/3)" in err  # line progress when stderr is not a terminal


def test_unsupported_channel_layout(tmp_path: Path, tiny_weights: str, capsys) -> None:
    write_image(tmp_path / "grey.0001.exr", np.zeros((8, 8, 1), np.float32), "half", ("Y",))
    code, _, err = _run(["enhance", str(tmp_path / "grey.0001.exr"), str(tmp_path / "o.exr"), "-w", tiny_weights],
                        capsys)
    assert code == 3
    _assert_one_line_error(err, "grey.0001.exr")


def test_unwritable_output(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", frames=[1])
    (tmp_path / "blocker").write_text("a file where a folder should be")
    code, _, err = _run(["enhance", src, str(tmp_path / "blocker" / "x.####.exr"), "-w", tiny_weights], capsys)
    assert code == 4
    _assert_one_line_error(err, "blocker")


def test_bad_weights(tmp_path: Path, capsys) -> None:
    src = _sequence(tmp_path / "in", frames=[1])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    code, _, err = _run(["enhance", src, str(tmp_path / "o") + "/", "-w", str(tmp_path / "junk.safetensors")], capsys)
    assert code == 5
    _assert_one_line_error(err, "junk.safetensors")
    code, _, err = _run(["enhance", src, str(tmp_path / "o") + "/", "-w", str(tmp_path / "none.safetensors")], capsys)
    assert code == 5
    _assert_one_line_error(err, "not found")


def test_unknown_colourspace(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", frames=[1])
    code, _, err = _run(["enhance", src, str(tmp_path / "o") + "/", "-w", tiny_weights, "--input-colorspace", "ACEScgg"],
                        capsys)
    assert code == 6
    _assert_one_line_error(err, "ACEScgg", "ACEScg", "`nightgrade colorspaces` lists them")  # a command that exists
    assert _files(tmp_path / "o") == []


def test_bad_frame_range_is_a_usage_error(tmp_path: Path, tiny_weights: str, capsys) -> None:
    src = _sequence(tmp_path / "in", frames=[1])
    code, _, err = _run(["enhance", src, str(tmp_path / "o") + "/", "-w", tiny_weights, "--frames", "9-x"], capsys)
    assert code == 2
    _assert_one_line_error(err, "9-x")


def test_info_prints_metadata(tiny_weights: str, capsys) -> None:
    code, out, _ = _run(["info", tiny_weights, "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["model_name"] == "tiny" and data["tiles"] == {"local": 64, "region": 160, "stride": 32}
    assert data["digest"].startswith("sha256:")


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: one stderr line and the documented code."""
    exe = Path(sys.executable).with_name("nightgrade")
    result = subprocess.run([str(exe), "enhance", str(tmp_path / "nope.####.exr"), str(tmp_path / "o") + "/"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "NIGHTGRADE_DEBUG": ""})
    assert result.returncode == 3, result.stderr
    _assert_one_line_error(result.stderr)


def test_colorspaces_lists_the_config_and_rejects_a_bad_one(capsys) -> None:
    code, out, _ = _run(["colorspaces"], capsys)
    assert code == 0 and "ACEScg" in out and "aliases" in out
    code, _, err = _run(["colorspaces", "--ocio-config", "/nonexistent/config.ocio"], capsys)
    assert code == 6
    _assert_one_line_error(err, "/nonexistent/config.ocio")


def test_output_colourspace_follows_the_output_format(tmp_path: Path, tiny_weights: str, capsys) -> None:
    """Issue 19 item 2: an 8-bit PNG written as EXR is linearised; a linear EXR written as PNG is
    display-encoded, not nearly black; the choice is one stderr line and in --json."""
    png = _sequence(tmp_path / "png", frames=[1], ext="png", pixel_type="uint8")
    code, out, err = _run(["enhance", png, str(tmp_path / "a.exr"), "-w", tiny_weights, "--mix", "0", "--json"], capsys)
    assert code == 0, err
    colours = json.loads(out)["colorspaces"]
    assert (colours["input"], colours["output"]) == ("sRGB Encoded Rec.709 (sRGB)", "Linear Rec.709 (sRGB)")
    assert "EXR default" in colours["output_rule"]
    lines = [line for line in err.splitlines() if line.startswith("nightgrade: colour:")]
    assert lines == [f"nightgrade: colour: sRGB Encoded Rec.709 (sRGB) -> Linear Rec.709 (sRGB) "
                     f"(output colourspace {colours['output_rule']})"]
    source = read_frame(png.replace("####", "0001")).rgb
    linear = np.where(source <= 0.04045, source / 12.92, ((source + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(read_frame(str(tmp_path / "a.exr")).rgb, linear, atol=2e-3)  # half precision

    exr = _sequence(tmp_path / "exr", frames=[1])
    code, out, err = _run(["enhance", exr, str(tmp_path / "b.png"), "-w", tiny_weights, "--mix", "0", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["colorspaces"]["output"] == "sRGB Encoded Rec.709 (sRGB)"
    assert float(read_frame(str(tmp_path / "b.png")).rgb.mean()) > 1.5 * float(read_frame(exr.replace("####", "0001")).rgb.mean())

    # the input's colourspace is kept where the output holds it, and a given one always wins
    code, out, err = _run(["enhance", exr, str(tmp_path / "c.exr"), "-w", tiny_weights, "--json"], capsys)
    assert json.loads(out)["colorspaces"]["output"] == "Linear Rec.709 (sRGB)"
    code, out, err = _run(["enhance", exr, str(tmp_path / "d.png"), "-w", tiny_weights, "--json",
                           "--output-colorspace", "ACEScct"], capsys)
    assert json.loads(out)["colorspaces"]["output"] == "ACEScct" and "from --output-colorspace" in err


def test_version_and_small_first_hour_fixes(tmp_path: Path, tiny_weights: str, capsys, monkeypatch) -> None:
    """Issue 19 item 11: --version; an output name without extension is a folder; evaluate's
    defaults stay out of the current folder's docs/."""
    try:
        main(["--version"])
    except SystemExit as done:
        assert done.code == 0
    assert capsys.readouterr().out.strip().startswith("nightgrade 0.")
    src = _sequence(tmp_path / "in", frames=[1, 2])
    code, _, err = _run(["enhance", src, str(tmp_path / "renders" / "sh010"), "-w", tiny_weights], capsys)
    assert code == 0, err
    assert _files(tmp_path / "renders" / "sh010") == ["shot.0001.exr", "shot.0002.exr"]
    from nightgrade.server.cli.main import build_parser

    args = build_parser().parse_args(["evaluate", "data/eval"])
    assert args.out.startswith("out/") and args.sheet.startswith("out/")


def test_look_controls_validate_and_reach_the_pixels(tmp_path: Path, tiny_weights: str, capsys) -> None:
    """Issue 19 controls: each flag names its range when out of it; the defaults are today's look
    (bit-identical), and a control changes the pixels and is reported in --json."""
    src = _sequence(tmp_path / "in", frames=[1])
    for flag, value in (("--luma-denoise", "1.5"), ("--chroma-denoise", "-1"), ("--detail", "3")):
        code, _, err = _run(["enhance", src, str(tmp_path / "x") + "/", "-w", tiny_weights, flag, value], capsys)
        assert code == 2
        _assert_one_line_error(err, f"{flag} {float(value)!r} is outside 0..1")
    assert _files(tmp_path / "x") == []
    base = ["enhance", src, "-w", tiny_weights, "--json", "--bit-depth", "float"]
    outs = {}
    for name, extra in (("plain", []), ("defaults", ["--luma-denoise", "1", "--chroma-denoise", "1", "--detail", "0"]),
                        ("grain", ["--luma-denoise", "0", "--detail", "0.5"])):
        code, out, err = _run(base[:2] + [str(tmp_path / name) + "/"] + base[2:] + extra, capsys)
        assert code == 0, err
        outs[name] = read_frame(str(tmp_path / name / "shot.0001.exr")).rgb
    np.testing.assert_array_equal(outs["defaults"], outs["plain"])
    assert float(np.abs(outs["grain"] - outs["plain"]).max()) > 1e-3
    assert json.loads(out)["controls"] == {"luma_denoise": 0.0, "chroma_denoise": 1.0, "detail": 0.5}


def test_lower_layers_name_settings_and_the_cli_shows_its_flags(capsys) -> None:
    from nightgrade.colorpipeline.errors import UsageError, setting
    from nightgrade.server.cli.flags import flag
    from nightgrade.server.protocol import field_name

    err = UsageError(f"{setting('max_motion')} 0 is not above 0; or lower {setting('low_dir')}")
    assert str(err) == "max_motion 0 is not above 0; or lower low_dir"          # domain terms
    assert err.naming(flag) == "--max-motion 0 is not above 0; or lower --low"   # the CLI's words
    assert err.naming(field_name).startswith("params.max_motion 0")            # the daemon's words
    # end to end: a bad value from the command line comes back naming the flag the user typed
    assert main(["enhance", "in.####.exr", "out/", "--scale", "1.5"]) == 2
    assert "--scale 1.5 is outside" in capsys.readouterr().err
