"""Sequence naming (patterns, directories, ranges, output paths) and header probing of sequences."""
from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio
import pytest

from nightgrade.colorpipeline.errors import InputError, OutputError, UsageError
from nightgrade.colorpipeline.io.imageio import probe_sequence, read_frame
from nightgrade.colorpipeline.io.sequence import (
    SequenceSpec,
    format_frames,
    output_path_for,
    parse_frames,
    resolve_input,
)


def touch(folder, *names):
    for name in names:
        (folder / name).write_bytes(b"")


def write_exr(path, width=8, height=6, names=("R", "G", "B"), origin=(0, 0)):
    spec = oiio.ImageSpec(width, height, len(names), "half")
    spec.channelnames = names
    spec.x, spec.y = origin
    spec.full_x = spec.full_y = 0
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    assert out.write_image(np.full((height, width, len(names)), 0.25, np.float32))
    assert out.close()


# --- frame ranges -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("1001-1005", (1001, 1002, 1003, 1004, 1005)), ("1001", (1001,)), (" 5 - 7 ", (5, 6, 7)), (None, None), ("", None),
    ("1001-1006x2", (1001, 1003, 1005)), ("1001-1006:2", (1001, 1003, 1005)), ("1001,1003", (1001, 1003)),
    ("1010, 1001-1003x2, 1003", (1001, 1003, 1010)), ("7-7x3", (7,)),
])
def test_parse_frames(text, expected):
    """Issue 19 item 5: steps (Nuke/Deadline x, OpenJD :) and lists, each frame once, ascending."""
    assert parse_frames(text) == expected


@pytest.mark.parametrize("text, words", [
    ("1100-1001", "ends before it starts"), ("abc", "not understood"), ("1001-", "not understood"),
    ("1-2-3", "not understood"), ("1-9x0", "step 0"), ("1001,,1003", "not understood"), ("5x2", "not understood"),
    ("1-99999999", "more than"),
])
def test_parse_frames_rejects(text, words):
    with pytest.raises(UsageError, match=words):
        parse_frames(text)


@pytest.mark.parametrize("frames", [(1,), (1, 2), (1, 3), (1, 3, 5), (1, 2, 3, 10, 20, 30, 31), (4, 9, 11, 13, 100)])
def test_format_frames_round_trips(frames):
    assert parse_frames(format_frames(frames)) == frames
    assert format_frames((1001, 1003, 1005, 1006)) == "1001-1005x2,1006"


def test_stepped_range_selects_only_its_frames(tmp_path):
    touch(tmp_path, *(f"shot.{f}.exr" for f in range(1001, 1007)))
    assert resolve_input(str(tmp_path / "shot.####.exr"), "1001-1006x2").frames == (1001, 1003, 1005)
    with pytest.raises(UsageError, match="single file"):
        resolve_input(str(tmp_path / "shot.1001.exr"), "1001,1003")


# --- input patterns -----------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["shot.####.exr", "shot.%04d.exr", "shot.@@@@.exr"])
def test_pattern_forms_find_the_same_frames(tmp_path, form):
    touch(tmp_path, "shot.1001.exr", "shot.1002.exr", "shot.1003.exr", "shot.01001.exr", "other.1001.exr")
    spec = resolve_input(str(tmp_path / form))
    assert spec.frames == (1001, 1002, 1003)
    assert not spec.single_file
    assert spec.path_for(1002) == str(tmp_path / "shot.1002.exr")
    assert spec.display_pattern == str(tmp_path / "shot.####.exr")


def test_unpadded_pattern_spans_digit_counts(tmp_path):
    touch(tmp_path, "s.8.png", "s.9.png", "s.10.png")
    spec = resolve_input(str(tmp_path / "s.%d.png"))
    assert spec.frames == (8, 9, 10)
    assert spec.path_for(10) == str(tmp_path / "s.10.png")


def test_pattern_with_wrong_padding_finds_nothing(tmp_path):
    touch(tmp_path, "shot.1001.exr")
    with pytest.raises(InputError, match=r"no frames match .*shot\.#####\.exr"):
        resolve_input(str(tmp_path / "shot.#####.exr"))


def test_frame_range_lists_every_frame_even_missing_ones(tmp_path):
    touch(tmp_path, "shot.1001.exr")
    spec = resolve_input(str(tmp_path / "shot.####.exr"), "1001-1004")
    assert spec.frames == (1001, 1002, 1003, 1004)


def test_gap_without_range_is_an_error_naming_the_hole(tmp_path):
    touch(tmp_path, "shot.1001.exr", "shot.1002.exr", "shot.1004.exr")
    with pytest.raises(InputError, match=r"1 missing frame\(s\) between 1001 and 1004: 1003;"):
        resolve_input(str(tmp_path / "shot.####.exr"))


def test_two_placeholders_rejected(tmp_path):
    with pytest.raises(UsageError, match="2 frame placeholders"):
        resolve_input(str(tmp_path / "shot_##.####.exr"))


def test_percent_in_folder_name_is_literal(tmp_path):
    folder = tmp_path / "grade 100%"
    folder.mkdir()
    touch(folder, "a.0001.exr", "a.0002.exr")
    spec = resolve_input(str(folder / "a.####.exr"))
    assert spec.path_for(2) == str(folder / "a.0002.exr")
    assert resolve_input(str(folder)).path_for(1) == str(folder / "a.0001.exr")


def test_missing_input_path(tmp_path):
    with pytest.raises(InputError, match=r"input .*nope\.exr does not exist"):
        resolve_input(str(tmp_path / "nope.exr"))


# --- directories and single files ---------------------------------------------------------------

def test_directory_holds_one_sequence(tmp_path):
    touch(tmp_path, "plate.0998.dpx", "plate.0999.dpx", "plate.1000.dpx", "notes.txt",
          ".plate.1000.dpx.123-ab.tmp.dpx")
    spec = resolve_input(str(tmp_path), "999-1000")
    assert spec.frames == (999, 1000)
    assert spec.path_for(999) == str(tmp_path / "plate.0999.dpx")
    assert resolve_input(str(tmp_path)).frames == (998, 999, 1000)


def test_directory_with_two_sequences_names_both(tmp_path):
    touch(tmp_path, "a.1001.exr", "a.1002.exr", "b_1001.exr")
    with pytest.raises(InputError, match=r"holds 2 sequences \(a\.####\.exr, b_####\.exr\)"):
        resolve_input(str(tmp_path))


def test_directory_with_mixed_padding_is_two_sequences(tmp_path):
    touch(tmp_path, "a.0001.exr", "a.01.exr")
    with pytest.raises(InputError, match=r"holds 2 sequences \(a\.##\.exr, a\.####\.exr\)"):
        resolve_input(str(tmp_path))


def test_empty_directory(tmp_path):
    touch(tmp_path, "readme.txt")
    with pytest.raises(InputError, match="no image frames"):
        resolve_input(str(tmp_path))


def test_directory_with_one_unnumbered_image_is_a_single_file(tmp_path):
    touch(tmp_path, "still.png")
    spec = resolve_input(str(tmp_path))
    assert spec.single_file and spec.frames == (1,)


def test_single_file_takes_its_frame_number_from_the_name(tmp_path):
    touch(tmp_path, "shot_v2.1042.exr", "still.exr")
    spec = resolve_input(str(tmp_path / "shot_v2.1042.exr"))
    assert spec == SequenceSpec(str(tmp_path / "shot_v2.1042.exr"), (1042,), single_file=True)
    assert spec.path_for(1042) == str(tmp_path / "shot_v2.1042.exr")
    assert resolve_input(str(tmp_path / "still.exr"), "7").frames == (7,)
    with pytest.raises(UsageError, match="single file .* is frame 1042"):
        resolve_input(str(tmp_path / "shot_v2.1042.exr"), "1001")
    with pytest.raises(UsageError, match="1-5 given for the single file"):
        resolve_input(str(tmp_path / "still.exr"), "1-5")


# --- output paths -------------------------------------------------------------------------------

def test_output_pattern_keeps_frame_numbers(tmp_path):
    spec = SequenceSpec(str(tmp_path / "in" / "shot.%04d.exr"), (1001, 1002))
    assert output_path_for(str(tmp_path / "out.#####.dpx"), spec, 1002) == str(tmp_path / "out.01002.dpx")
    assert output_path_for(str(tmp_path / "out.%06d.png"), spec, 1001) == str(tmp_path / "out.001001.png")


def test_output_directory_keeps_input_names(tmp_path):
    (tmp_path / "out").mkdir()
    spec = SequenceSpec(str(tmp_path / "in" / "shot.%04d.exr"), (1001, 1002))
    assert output_path_for(str(tmp_path / "out"), spec, 1001) == str(tmp_path / "out" / "shot.1001.exr")
    new_dir = str(tmp_path / "not_yet") + os.sep
    assert output_path_for(new_dir, spec, 1002) == str(tmp_path / "not_yet" / "shot.1002.exr")


def test_output_single_file(tmp_path):
    single = SequenceSpec(str(tmp_path / "plate.exr"), (1,), single_file=True)
    assert output_path_for(str(tmp_path / "graded.tif"), single, 1) == str(tmp_path / "graded.tif")
    spec = SequenceSpec(str(tmp_path / "shot.%04d.exr"), (1001, 1002))
    with pytest.raises(UsageError, match="one file but the input has 2 frames"):
        output_path_for(str(tmp_path / "graded.exr"), spec, 1001)


def test_output_never_overwrites_its_input(tmp_path):
    spec = SequenceSpec(str(tmp_path / "shot.%04d.exr"), (1001,))
    with pytest.raises(OutputError, match=r"is the input file of frame 1001"):
        output_path_for(str(tmp_path), spec, 1001)


# --- header probing -----------------------------------------------------------------------------

def test_probe_reports_shared_layout(tmp_path):
    for frame in (1001, 1002, 1003):
        write_exr(tmp_path / f"shot.{frame}.exr", names=("R", "G", "B", "A"))
    info = probe_sequence(resolve_input(str(tmp_path / "shot.####.exr")))
    assert (info.width, info.height, info.channels, info.depth) == (8, 6, ("R", "G", "B", "A"), "half")


def test_missing_frame_in_the_middle_of_a_range(tmp_path):
    for frame in (1001, 1002, 1004):
        write_exr(tmp_path / f"shot.{frame}.exr")
    spec = resolve_input(str(tmp_path / "shot.####.exr"), "1001-1004")
    missing = str(tmp_path / "shot.1003.exr")
    with pytest.raises(InputError, match=rf"^frame 1003 is missing: {missing} does not exist; "):
        probe_sequence(spec)
    with pytest.raises(InputError, match=rf"^frame 1003 is missing: {missing} does not exist"):
        read_frame(spec.path_for(1003), frame=1003)


def test_probe_lists_further_missing_frames(tmp_path):
    write_exr(tmp_path / "shot.1001.exr")
    with pytest.raises(InputError, match=r"frame 1002 is missing: .* and 2 more \(1003, 1004\)"):
        probe_sequence(resolve_input(str(tmp_path / "shot.####.exr"), "1001-1004"))


def test_size_change_inside_a_sequence(tmp_path):
    write_exr(tmp_path / "shot.1001.exr")
    write_exr(tmp_path / "shot.1002.exr", width=10)
    spec = resolve_input(str(tmp_path / "shot.####.exr"))
    with pytest.raises(InputError, match=r"frame 1002 \(.*shot\.1002\.exr\) is 10x6 but .*shot\.1001\.exr is 8x6"):
        probe_sequence(spec)
    info = probe_sequence(SequenceSpec(spec.pattern, (1001,)))
    with pytest.raises(InputError, match="is 10x6 but"):
        read_frame(spec.path_for(1002), frame=1002, expect=info)


def test_moving_data_window_inside_a_sequence(tmp_path):
    write_exr(tmp_path / "shot.1001.exr", origin=(2, 1))
    write_exr(tmp_path / "shot.1002.exr", origin=(3, 1))
    expected = r"frame 1002 .* data window at \(3,1\) but .*shot\.1001\.exr has it at \(2,1\)"
    with pytest.raises(InputError, match=expected):
        probe_sequence(resolve_input(str(tmp_path / "shot.####.exr")))


def test_channel_change_inside_a_sequence(tmp_path):
    write_exr(tmp_path / "shot.1001.exr")
    write_exr(tmp_path / "shot.1002.exr", names=("R", "G", "B", "A"))
    with pytest.raises(InputError, match=r"frame 1002 .* has channels R,G,B,A but .* has R,G,B;"):
        probe_sequence(resolve_input(str(tmp_path / "shot.####.exr")))


def test_probe_rejects_unreadable_header(tmp_path):
    write_exr(tmp_path / "shot.1001.exr")
    (tmp_path / "shot.1002.exr").write_bytes(b"not an exr at all")
    with pytest.raises(InputError, match=r"frame 1002 \(.*\) cannot be read, it is corrupt or not an image"):
        probe_sequence(resolve_input(str(tmp_path / "shot.####.exr")))


def test_output_name_without_extension_is_a_folder(tmp_path):
    """Issue 19 item 11: `enhance shot.####.exr renders/sh010` means the folder renders/sh010."""
    touch(tmp_path, "shot.1001.exr", "shot.1002.exr")
    spec = resolve_input(str(tmp_path / "shot.####.exr"))
    assert output_path_for(str(tmp_path / "renders" / "sh010"), spec, 1002) == \
        str(tmp_path / "renders" / "sh010" / "shot.1002.exr")
    (tmp_path / "notes").write_bytes(b"")  # an existing file without extension is still a file
    with pytest.raises(UsageError, match="one file but the input has 2 frames"):
        output_path_for(str(tmp_path / "notes"), spec, 1001)
