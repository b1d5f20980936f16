"""Frame-sequence naming: patterns, frame ranges, directory scans and output paths.

Pure path logic; nothing here opens an image (see ``imageio`` for that). Accepted forms, for input
and output alike:

* ``shot.####.exr`` - one ``#`` per digit (Nuke convention: ``####`` pads to 4, ``#`` is unpadded);
* ``shot.@@@@.exr`` - the same with ``@``;
* ``shot.%04d.exr`` / ``shot.%d.exr`` - printf style;
* a directory - input: the single numbered sequence in it; output: keep the input's file names (an
  output name without an extension that is not a file is a directory, created when missing);
* a single file - input: that file, its frame number taken from the last digit run of its name.

Frame numbers are preserved from input to output: frame 1001 of the input is written as frame 1001.
Frame ranges (``--frames``) are parsed here only (``parse_frames``): ranges, steps and lists.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from nightgrade.colorpipeline.errors import InputError, OutputError, UsageError

#: Extensions a directory scan considers to be image frames (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset({".exr", ".dpx", ".tif", ".tiff", ".png"})

_TOKEN = re.compile(r"%0?\d*d|#+|@+")
# The frame number is the digit run that ends the file's stem (shot_v2.1001.exr -> 1001).
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)$")
_RANGE = re.compile(r"^\s*(?P<first>\d+)\s*(?:-\s*(?P<last>\d+)\s*(?:[x:]\s*(?P<step>\d+)\s*)?)?$")
MAX_FRAMES = 1_000_000  # a typo such as 1001-10011000 must not allocate a billion frame numbers
_MAX_LISTED = 8


@dataclass(frozen=True)
class SequenceSpec:
    """A resolved input: a printf-style ``pattern`` (``%%`` escapes a literal ``%``) and its frames.

    For a single file ``pattern`` is the file path itself (no escaping) and ``frames`` holds the one
    frame number used to name outputs.
    """

    pattern: str
    frames: tuple[int, ...]
    single_file: bool = False

    def path_for(self, frame: int) -> str:
        """The file that holds ``frame``."""
        if self.single_file:
            return self.pattern
        return self.pattern % frame

    @property
    def display_pattern(self) -> str:
        """The pattern as users write it (``shot.####.exr``), for messages."""
        if self.single_file:
            return self.pattern
        return _display(self.pattern)


def parse_frames(text: str | None) -> tuple[int, ...] | None:
    """The frames a range expression names, ascending and each once; ``None``/blank -> None.

    The one parser of frame ranges. A comma-separated list of parts, each ``1001`` (one frame),
    ``1001-1100`` (inclusive) or a stepped range: ``1001-1100x2`` (Nuke, Deadline, OpenCue) or
    ``1001-1100:2`` (Open Job Description); e.g. ``1001-1006x2,1010``.
    """
    if text is None or not text.strip():
        return None
    frames: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise UsageError(f"frame range {text!r} is not understood at {part.strip()!r}; write FIRST-LAST "
                             "(1001-1100), a step (1001-1100x2 or 1001-1100:2), one frame (1001) or a list (1001,1003)")
        first = int(match["first"])
        last = int(match["last"]) if match["last"] is not None else first
        step = int(match["step"]) if match["step"] is not None else 1
        if last < first:
            raise UsageError(f"frame range {part.strip()!r} ends before it starts; write FIRST-LAST with FIRST <= LAST")
        if step < 1:
            raise UsageError(f"frame range {part.strip()!r} has step {step}; a step is at least 1")
        if len(frames) + (last - first) // step + 1 > MAX_FRAMES:
            raise UsageError(f"frame range {text!r} names more than {MAX_FRAMES} frames; check the numbers")
        frames.update(range(first, last + 1, step))
    return tuple(sorted(frames))


def format_frames(frames: tuple[int, ...] | list[int]) -> str:
    """The shortest ``parse_frames`` expression of ``frames`` in the Nuke/OpenCue spelling
    (runs as ``A-B``, evenly stepped runs as ``A-BxN``, the rest as a list)."""
    ordered = sorted(set(frames))
    parts, i = [], 0
    while i < len(ordered):
        j = i
        step = ordered[i + 1] - ordered[i] if i + 1 < len(ordered) else 1
        while j + 1 < len(ordered) and ordered[j + 1] - ordered[j] == step:
            j += 1
        if j - i >= 2 or (j > i and step == 1):
            parts.append(f"{ordered[i]}-{ordered[j]}" + (f"x{step}" if step > 1 else ""))
            i = j + 1
        else:
            parts.append(str(ordered[i]))
            i += 1
    return ",".join(parts)


def has_frame_token(path: str) -> bool:
    """True when the file name part of ``path`` holds a ``####``, ``@@@@`` or ``%04d`` placeholder."""
    return _TOKEN.search(os.path.basename(path)) is not None


def resolve_input(path: str, frames: str | None = None) -> SequenceSpec:
    """Turn a user's input argument (pattern, directory or file) and optional range into a spec.

    With a range, the spec lists every frame in it whether or not the file exists, so that a
    missing frame is reported by name (``imageio.probe_sequence``). Without one, the frames found on
    disk are used and a gap among them is an error: a hole in a render usually means a failed frame,
    and processing around it would hand back an incomplete shot without a word.
    """
    selected = parse_frames(frames)
    if has_frame_token(path):
        return _resolve_pattern(_to_printf(path), path, selected)
    if os.path.isdir(path):
        return _resolve_directory(path, selected)
    if os.path.isfile(path):
        return _resolve_single_file(path, selected)
    raise InputError(f"input {path} does not exist; give an existing file, folder or pattern like shot.####.exr")


def output_path_for(output: str, input_spec: SequenceSpec, frame: int) -> str:
    """The file to write for ``frame``: fill a pattern, or keep the input's name inside a directory.

    A plain file name is accepted only when the input is one frame. Raises OutputError when the
    result would overwrite the input file it was computed from.
    """
    source = input_spec.path_for(frame)
    if has_frame_token(output):
        target = _to_printf(output) % frame
    elif os.path.isdir(output) or output.endswith(("/", os.sep)) or _means_folder(output):
        target = os.path.join(output, os.path.basename(source))
    elif len(input_spec.frames) > 1:
        raise UsageError(
            f"output {output} is one file but the input has {len(input_spec.frames)} frames; "
            "give a pattern like out.####.exr or a folder"
        )
    else:
        target = output
    if os.path.realpath(target) == os.path.realpath(source):
        raise OutputError(f"output {target} is the input file of frame {frame}; write to another folder or name")
    other = input_frame_at(input_spec, target)
    if other is not None:  # e.g. input a#.exr, output a1#.exr: frame 1 would land on input frame 11
        raise OutputError(f"output {target} of frame {frame} would be frame {other} of the input "
                          f"{input_spec.display_pattern}; write to another folder or name")
    return target


def _means_folder(output: str) -> bool:
    """A name without an extension (``renders/sh010``) that is not a file names a folder: no image
    format could be written to it, and Nuke-style users type folders without the trailing slash."""
    return not os.path.splitext(os.path.basename(output))[1] and not os.path.isfile(output)


def input_frame_at(spec: SequenceSpec, path: str) -> int | None:
    """The frame of the input sequence ``spec`` that ``path`` names, whether or not the file exists
    or the frame is in the range (None when ``path`` is no frame of it)."""
    if spec.single_file:
        return spec.frames[0] if os.path.realpath(path) == os.path.realpath(spec.pattern) else None
    directory, prefix, suffix, width = _split_pattern(spec.pattern)
    folder, name = os.path.split(path)
    if os.path.realpath(folder or ".") != os.path.realpath(directory or "."):
        return None
    digits = name[len(prefix): len(name) - len(suffix)] if len(name) > len(prefix) + len(suffix) else ""
    if not (name.startswith(prefix) and name.endswith(suffix) and digits.isdigit()):
        return None
    return _frame_of(digits, width)


def _to_printf(path: str) -> str:
    """Convert the (single) frame placeholder of ``path``'s file name to ``%0Nd``; escape other ``%``."""
    directory, name = os.path.split(path)
    tokens = list(_TOKEN.finditer(name))
    if len(tokens) != 1:
        raise UsageError(f"{path} has {len(tokens)} frame placeholders in its file name; use exactly one (####)")
    token = tokens[0]
    text = token.group()
    if text.startswith("%"):
        digits = text[1:-1]
        if digits and not digits.startswith("0") and digits != "1":
            raise UsageError(f"{path}: use zero padding like %04d, not {text}")
        width = int(digits) if digits else 1
    else:
        width = len(text)
    prefix = os.path.join(directory, name[: token.start()]) if directory else name[: token.start()]
    return _escape(prefix) + f"%0{width}d" + _escape(name[token.end():])


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _display(pattern: str) -> str:
    """``shot.%04d.exr`` -> ``shot.####.exr`` for messages."""
    return re.sub(r"%0(\d+)d", lambda m: "#" * int(m[1]), pattern).replace("%%", "%")


def _split_pattern(pattern: str) -> tuple[str, str, str, int]:
    """(directory, file prefix, file suffix, width) of a printf pattern made by ``_to_printf``."""
    directory, name = os.path.split(pattern)
    match = re.search(r"%0(\d+)d", name)
    assert match is not None, pattern
    unescape = lambda s: s.replace("%%", "%")  # noqa: E731 - tiny local helper
    return unescape(directory), unescape(name[: match.start()]), unescape(name[match.end():]), int(match[1])


def _frame_of(digits: str, width: int) -> int | None:
    """The frame number ``digits`` spells under padding ``width``, or None if padded differently."""
    number = int(digits)
    return number if f"{number:0{width}d}" == digits else None


def _resolve_pattern(pattern: str, original: str, selected: tuple[int, ...] | None) -> SequenceSpec:
    if selected is not None:
        return SequenceSpec(pattern, selected)
    directory, prefix, suffix, width = _split_pattern(pattern)
    folder = directory or "."
    if not os.path.isdir(folder):
        raise InputError(f"folder {folder} of input {original} does not exist")
    found = []
    for entry in os.listdir(folder):
        if entry.startswith(prefix) and entry.endswith(suffix) and len(entry) > len(prefix) + len(suffix):
            digits = entry[len(prefix): len(entry) - len(suffix)]
            frame = _frame_of(digits, width) if digits.isdigit() else None
            if frame is not None:
                found.append(frame)
    if not found:
        raise InputError(f"no frames match {original}; check the name and padding (#### is 4 digits)")
    return _contiguous(SequenceSpec(pattern, tuple(sorted(found))))


def _contiguous(spec: SequenceSpec) -> SequenceSpec:
    """Reject a discovered sequence with holes, naming the missing frames."""
    first, last = spec.frames[0], spec.frames[-1]
    present = set(spec.frames)
    missing = [f for f in range(first, last + 1) if f not in present]
    if missing:
        listed = ", ".join(str(f) for f in missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
        raise InputError(
            f"{spec.display_pattern} has {len(missing)} missing frame(s) between {first} and {last}: {listed}; "
            "restore them or pass a frame range that avoids them"
        )
    return spec


def _resolve_directory(folder: str, selected: tuple[int, ...] | None) -> SequenceSpec:
    """The one numbered sequence in ``folder``; hidden files (such as our temp files) are ignored."""
    groups: dict[tuple[str, str], list[str]] = {}
    loose: list[str] = []
    for entry in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(entry)
        if entry.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS:
            continue
        if not os.path.isfile(os.path.join(folder, entry)):
            continue
        match = _NUMBERED.match(stem)
        if match is None:
            loose.append(entry)
        else:
            groups.setdefault((match["prefix"], ext), []).append(match["digits"])
    sequences = [_group_pattern(folder, prefix, ext, digits) for (prefix, ext), digits in sorted(groups.items())]
    names = [p for seq in sequences for p in seq]
    if len(names) > 1:
        shown = ", ".join(os.path.basename(_display(p)) for p in names)
        raise InputError(f"folder {folder} holds {len(names)} sequences ({shown}); pass one as a pattern instead")
    if not names:
        if len(loose) == 1:
            return _resolve_single_file(os.path.join(folder, loose[0]), selected)
        what = f"{len(loose)} unnumbered images" if loose else "no image frames (.exr .dpx .tif .tiff .png)"
        raise InputError(f"folder {folder} holds {what}; pass a file or a pattern like shot.####.exr")
    return _resolve_pattern(names[0], names[0], selected)


def _group_pattern(folder: str, prefix: str, ext: str, digit_runs: list[str]) -> list[str]:
    """Patterns for files sharing prefix and extension: one, or two when paddings disagree."""
    width = min(len(d) for d in digit_runs)
    base = _escape(os.path.join(folder, prefix))
    if all(_frame_of(d, width) is not None for d in digit_runs):
        return [f"{base}%0{width}d{_escape(ext)}"]
    widths = sorted({len(d) for d in digit_runs})
    return [f"{base}%0{w}d{_escape(ext)}" for w in widths]


def _resolve_single_file(path: str, selected: tuple[int, ...] | None) -> SequenceSpec:
    """A lone file; its frame number comes from its name, else from a one-frame range, else 1."""
    match = _NUMBERED.match(os.path.splitext(os.path.basename(path))[0])
    named = int(match["digits"]) if match is not None else None
    if selected is not None and len(selected) > 1:
        raise UsageError(f"frame range {format_frames(selected)} given for the single file {path}")
    if selected is not None and named is not None and selected[0] != named:
        raise UsageError(f"frame {selected[0]} requested but the single file {path} is frame {named}")
    frame = named if named is not None else (selected[0] if selected is not None else 1)
    return SequenceSpec(path, (frame,), single_file=True)
