"""Reading and writing frames with OpenImageIO: EXR, DPX, TIFF and PNG.

Reads give every channel as float32 (see ``frame.Frame``); alpha is read as stored (unassociated
formats are not premultiplied on the way in) so RGB and alpha go back out unchanged. Writes carry
the source header's metadata across, choose bit depth and compression per format, and are atomic:
pixels go to a hidden temp file in the target folder, which is fsynced and renamed over the target,
so a reader never sees a partial frame and a failed write leaves nothing behind.

Output bit depth: ``WriteOptions.bit_depth`` if given, else the input's depth when the output format
can store it, else the format default - EXR half, DPX 10-bit, TIFF 16-bit, PNG 16-bit.
Output compression: the option if given, else the input's when valid for the output format, else
the format default - EXR zip, TIFF zip, DPX none, PNG the writer's default.
Formats without a display window (TIFF, PNG) are written as the full display window, the data
window placed inside it and the rest black, so a viewer shows the frame where the EXR would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import OpenImageIO as oiio

from nightgrade.colorpipeline.errors import InputError, OutputError, UsageError
from nightgrade.colorpipeline.io.atomic import atomic_target
from nightgrade.colorpipeline.io.formats import FORMATS, FormatRules, choose_compression, choose_depth, format_rules
from nightgrade.colorpipeline.io.frame import DEPTHS, Frame, depth_of, resolve_channels
from nightgrade.colorpipeline.io.native_stderr import quiet_decoder
from nightgrade.colorpipeline.io.sequence import SequenceSpec

_MAX_LISTED = 8
_TYPES = {"8": "uint8", "10": "uint16", "12": "uint16", "16": "uint16", "half": "half", "float": "float"}
_INTEGER_BITS = {"8": 8, "10": 10, "12": 12, "16": 16}
# Attributes that describe how the source file was encoded, not the picture; the writer sets its own.
_ENCODING_ATTRIBUTES = (
    "compression", "planarconfig", "oiio:BitsPerSample", "oiio:RowsPerChunk", "oiio:subimages",
    "oiio:subimagename", "openexr:chunkCount", "tiff:Compression", "tiff:PhotometricInterpretation",
    "tiff:PlanarConfiguration", "tiff:RowsPerStrip", "dpx:ImageDescriptor", "dpx:Packing",
    "dpx:EndOfLinePadding", "dpx:EndOfImagePadding",
)


@dataclass(frozen=True)
class WriteOptions:
    """Output encoding. ``bit_depth``: one of ``frame.DEPTHS`` or None (see module doc);
    ``compression``: a name such as zip, piz, dwaa (optionally ``name:level``) or None;
    ``drop_extra_channels``: write only RGB(+alpha) instead of refusing formats that cannot hold Z/AOVs."""

    bit_depth: str | None = None
    compression: str | None = None
    drop_extra_channels: bool = False

    def __post_init__(self) -> None:
        if self.bit_depth is not None and self.bit_depth not in DEPTHS:
            raise UsageError(f"bit depth {self.bit_depth!r} is not one of {', '.join(DEPTHS)}")


@dataclass(frozen=True)
class SequenceInfo:
    """What every frame of a probed sequence shares; ``reference`` is the file the others were compared to.

    ``origin`` is the data window's (x, y): a window that moves between frames would misalign
    anything temporal, so it must stay put like the size.
    """

    width: int
    height: int
    channels: tuple[str, ...]
    depth: str
    reference: str
    origin: tuple[int, int] = (0, 0)


def read_header(path: str, frame: int | None = None) -> oiio.ImageSpec:
    """The header of ``path`` without decoding pixels; InputError if missing or unreadable."""
    image = _open(path, frame)
    try:
        return oiio.ImageSpec(image.spec())
    finally:
        image.close()


def read_frame(path: str, *, frame: int | None = None, expect: SequenceInfo | None = None) -> Frame:
    """Decode every channel of ``path`` into a Frame.

    ``frame`` only names the frame in messages; ``expect`` (from ``probe_sequence``) makes a size or
    channel change inside a sequence an InputError.
    """
    where = _where(path, frame)
    image = _open(path, frame)
    try:
        spec = image.spec()
        names = tuple(spec.channelnames)
        _check_layout(spec, where)
        rgb, alpha = resolve_channels(names, where)
        if expect is not None:
            _check_consistent(spec, expect, where)
        with quiet_decoder(path):
            pixels = image.read_image(format="float")
        error = image.geterror()
        if pixels is None or error:
            raise InputError(f"{where} is corrupt or truncated ({_one_line(error)}); re-render or replace it")
    finally:
        image.close()
    pixels = np.ascontiguousarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
    bits = spec.get_int_attribute("oiio:BitsPerSample", 0)
    formats = list(spec.channelformats) or [spec.format] * spec.nchannels
    depths = tuple(depth_of(f, bits) for f in formats)
    if depths[0] in ("10", "12"):
        # OIIO decodes 10/12-bit codes via 16 bits, landing ~1e-5 off code/(2^n - 1); snap back exactly.
        pixels = _quantize(pixels, _INTEGER_BITS[depths[0]])
    return Frame(pixels, names, rgb, alpha, depths, oiio.ImageSpec(spec), path)


def probe_sequence(spec: SequenceSpec) -> SequenceInfo:
    """Open every frame's header (no pixels): all must exist, be readable and share size and channels.

    Run before rendering so that a farm job fails in seconds instead of after hours of frames.
    Damage inside the pixel data (a truncated EXR keeps a valid header) shows only when
    ``read_frame`` decodes that frame.
    """
    missing = [f for f in spec.frames if not os.path.isfile(spec.path_for(f))]
    if missing:
        shown = ", ".join(str(f) for f in missing[1:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
        more = f" and {len(missing) - 1} more ({shown})" if len(missing) > 1 else ""
        raise InputError(
            f"frame {missing[0]} is missing: {spec.path_for(missing[0])} does not exist{more}; "
            "render or restore it, or pass a frame range without it"
        )
    info: SequenceInfo | None = None
    for frame in spec.frames:
        path = spec.path_for(frame)
        header = read_header(path, frame)
        where = _where(path, frame)
        _check_layout(header, where)
        resolve_channels(tuple(header.channelnames), where)
        if info is None:
            bits = header.get_int_attribute("oiio:BitsPerSample", 0)
            info = SequenceInfo(header.width, header.height, tuple(header.channelnames),
                                depth_of(header.format, bits), path, (header.x, header.y))
        else:
            _check_consistent(header, info, where)
    assert info is not None, "a SequenceSpec always holds at least one frame"
    return info


def check_output(path: str, options: WriteOptions = WriteOptions(), info: SequenceInfo | None = None) -> None:
    """Fail early (OutputError) if ``path`` cannot be written: extension, depth, compression, folder,
    and with ``info`` whether the format can hold the sequence's channels."""
    rules = format_rules(path)
    choose_depth(rules, options.bit_depth, None, path)
    choose_compression(rules, options.compression, "", path)
    _check_folder(path)
    if info is not None:
        rgb, alpha = resolve_channels(info.channels, info.reference)
        _channel_plan(info.channels, rgb, alpha, rules, options.drop_extra_channels, path)


def output_depth(path: str, options: WriteOptions, source_depth: str | None) -> str:
    """The depth ``write_frame`` will use for ``path`` (``frame.DEPTHS``); OutputError as it would."""
    return choose_depth(format_rules(path), options.bit_depth, source_depth, path)


def write_frame(path: str, frame: Frame, options: WriteOptions = WriteOptions()) -> None:
    """Write ``frame`` to ``path`` atomically, with the source's metadata and all its channels."""
    rules = format_rules(path)
    _check_folder(path)
    depth = choose_depth(rules, options.bit_depth, frame.source_depth, path)
    compression = choose_compression(
        rules, options.compression, frame.header.get_string_attribute("compression", ""), path)
    plan = _channel_plan(frame.channel_names, frame.rgb_indices, frame.alpha_index, rules,
                         options.drop_extra_channels, path)
    spec = _output_spec(frame, plan, rules, depth, compression)
    pixels = np.ascontiguousarray(frame.pixels[:, :, plan])
    if not rules.display_window or (not rules.negative_origin and min(spec.x, spec.y) < 0):
        pixels = _fit_display_window(pixels, spec)
    if depth in _INTEGER_BITS:
        pixels = _quantize(pixels, _INTEGER_BITS[depth])
    _write_atomically(path, spec, pixels)


def _open(path: str, frame: int | None) -> oiio.ImageInput:
    where = _where(path, frame)
    if not os.path.exists(path):
        if frame is not None:
            raise InputError(f"frame {frame} is missing: {path} does not exist; render or restore it")
        raise InputError(f"input {path} does not exist")
    if os.path.isdir(path):
        raise InputError(f"{where} is a folder, not an image")
    config = oiio.ImageSpec()
    # Keep unassociated alpha as stored; OIIO would otherwise premultiply PNG/TIFF RGB on read.
    config.attribute("oiio:UnassociatedAlpha", 1)
    image = oiio.ImageInput.open(path, config)
    if image is None:
        raise InputError(f"{where} cannot be read, it is corrupt or not an image ({_one_line(oiio.geterror())})")
    return image


def _check_layout(spec: oiio.ImageSpec, where: str) -> None:
    if spec.deep or spec.depth > 1:
        raise InputError(f"{where} is a deep or volume image; write flat 2D frames")


def _check_consistent(spec: oiio.ImageSpec, info: SequenceInfo, where: str) -> None:
    if (spec.width, spec.height) != (info.width, info.height):
        raise InputError(
            f"{where} is {spec.width}x{spec.height} but {info.reference} is {info.width}x{info.height}; "
            "every frame of a sequence must have the same size"
        )
    if (spec.x, spec.y) != info.origin:
        raise InputError(
            f"{where} has its data window at ({spec.x},{spec.y}) but {info.reference} has it at "
            f"({info.origin[0]},{info.origin[1]}); every frame of a sequence must keep one data window"
        )
    if tuple(spec.channelnames) != info.channels:
        raise InputError(
            f"{where} has channels {','.join(spec.channelnames)} but {info.reference} has "
            f"{','.join(info.channels)}; every frame of a sequence must have the same channels"
        )


def _where(path: str, frame: int | None) -> str:
    return path if frame is None else f"frame {frame} ({path})"


def _one_line(text: str) -> str:
    collapsed = " ".join(text.split())
    return collapsed[:300] if collapsed else "no detail from OpenImageIO"


def _check_folder(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(folder):
        raise OutputError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: folder {folder} is read-only; fix its permissions or write elsewhere")
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a folder; give a file name or pattern")


def _channel_plan(names: tuple[str, ...], rgb: tuple[int, int, int], alpha: int | None,
                  rules: FormatRules, drop_extra: bool, path: str) -> list[int]:
    """Source channel indices in output order: EXR keeps the source order, others put RGB(A) first."""
    colour = list(rgb) + ([alpha] if alpha is not None else [])
    extras = [i for i in range(len(names)) if i not in colour]
    if drop_extra:
        return colour
    if extras and rules.colour_and_alpha_only:
        raise OutputError(
            f"cannot write {path}: {rules.name} holds only RGB and alpha, not {','.join(names[i] for i in extras)}; "
            "write .exr or .tif, or drop the extra channels"
        )
    return list(range(len(names))) if rules is FORMATS[".exr"] else colour + extras


def _output_spec(frame: Frame, plan: list[int], rules: FormatRules, depth: str,
                 compression: str | None) -> oiio.ImageSpec:
    """The source header with the output's channels, depth and compression; all other metadata kept."""
    spec = oiio.ImageSpec(frame.header)
    for name in _ENCODING_ATTRIBUTES:
        spec.erase_attribute(name)
    spec.tile_width = spec.tile_height = spec.tile_depth = 0
    names = tuple(frame.channel_names[i] for i in plan)
    spec.channelformats = ()
    spec.nchannels = len(plan)
    spec.channelnames = names
    spec.set_format(oiio.TypeDesc(_TYPES[depth]))
    colour = set(frame.rgb_indices) | {frame.alpha_index}
    if rules is FORMATS[".exr"]:
        # Extra channels (Z, AOVs) keep their own precision: a float depth pass must not become half.
        kept = [depth if i in colour or frame.channel_depths[i] not in rules.depths else frame.channel_depths[i]
                for i in plan]
        if len(set(kept)) > 1:
            spec.channelformats = tuple(oiio.TypeDesc(_TYPES[d]) for d in kept)
    spec.alpha_channel = plan.index(frame.alpha_index) if frame.alpha_index in plan else -1
    spec.z_channel = names.index("Z") if "Z" in names else -1
    if depth in ("10", "12"):
        spec.attribute("oiio:BitsPerSample", int(depth))
    if compression is not None:
        spec.attribute("compression", compression)
    return spec


def _fit_display_window(pixels: np.ndarray, spec: oiio.ImageSpec) -> np.ndarray:
    """Place the data window inside a black display window and make the spec describe that, origin 0."""
    full = (spec.full_x, spec.full_y, spec.full_width, spec.full_height)
    if (spec.x, spec.y, spec.width, spec.height) != full:
        fitted = np.zeros((spec.full_height, spec.full_width, pixels.shape[2]), dtype=np.float32)
        x0, x1 = max(spec.x, spec.full_x), min(spec.x + spec.width, spec.full_x + spec.full_width)
        y0, y1 = max(spec.y, spec.full_y), min(spec.y + spec.height, spec.full_y + spec.full_height)
        if x1 > x0 and y1 > y0:
            fitted[y0 - spec.full_y:y1 - spec.full_y, x0 - spec.full_x:x1 - spec.full_x] = \
                pixels[y0 - spec.y:y1 - spec.y, x0 - spec.x:x1 - spec.x]
        pixels = fitted
    spec.width, spec.height = spec.full_width, spec.full_height
    spec.x = spec.y = spec.full_x = spec.full_y = 0
    return pixels


def _quantize(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Round to the nearest code of an integer depth: OIIO converts float to 10/12 bits by truncation."""
    top = float(2**bits - 1)
    clean = np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0)
    return (np.round(np.clip(clean, 0.0, 1.0) * top) / top).astype(np.float32)


def _write_atomically(path: str, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
    """Encode through the one atomic writer (``atomic.atomic_target``: temp file beside ``path`` with
    the same extension, so OIIO picks the same writer). A failure anywhere, including one OIIO only
    reports through ``geterror`` (its PNG writer returns success on a full disk), leaves ``path`` as it was."""
    try:
        with atomic_target(path) as temp:
            output = oiio.ImageOutput.create(temp)
            if output is None:
                raise OutputError(f"cannot write {path}: {_one_line(oiio.geterror())}")
            if not output.open(temp, spec):
                raise OutputError(f"cannot write {path}: {_one_line(output.geterror()).replace(temp, path)}")
            try:
                written = output.write_image(pixels)
            finally:
                closed = output.close()
            error = output.geterror()
            # OIIO's PNG writer reports a full disk only as an error message, while the TIFF writer
            # leaves harmless ones (metadata it could not store): a message means "decode to be sure"
            if not (written and closed) or (error and not _decodes(temp)):
                first = (error or "the image writer failed").strip().splitlines()[0]  # a full disk repeats itself
                message = _one_line(first).replace(temp, path)
                raise OutputError(f"cannot write {path}: {message}")
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err


def _decodes(path: str) -> bool:
    image = oiio.ImageInput.open(path)
    if image is None:
        oiio.geterror()
        return False
    try:
        with quiet_decoder(path):
            return image.read_image("float") is not None and not image.geterror()
    finally:
        image.close()
