"""Movie files through PyAV (FFmpeg): read for previews and dailies, write dailies. Image
sequences stay the path for finals (``imageio``): a movie is 8-10-bit Y'CbCr, chroma-subsampled
and, for H.264/HEVC, lossy.

Frames of a movie are numbered from 1, in decode order (Nuke's convention for movies).

Colour: a movie's stream carries tags for its primaries, transfer and Y'CbCr matrix and range.
Reading honours the matrix and the range (limited "MPEG" 16-235 or full "JPEG") in the
Y'CbCr -> R'G'B' step, and maps primaries + transfer to an OCIO colourspace (``TAGGED``):

===================================  ===================================
primaries / transfer                 colourspace
===================================  ===================================
BT.709 (or unset) / BT.709 (or unset)  Gamma 2.4 Encoded Rec.709 (BT.1886 monitoring, as DPX)
BT.709 / sRGB (IEC 61966-2-1)        sRGB Encoded Rec.709 (sRGB)
BT.709 / gamma 2.2                   Gamma 2.2 Encoded Rec.709
BT.2020 / PQ (SMPTE ST 2084)         Rec.2100-PQ - Display
BT.2020 / HLG (ARIB STD-B67)         Rec.2100-HLG - Display
===================================  ===================================

Other tags give a ColorError naming them (pass the colourspace by name instead). Writing tags
the stream with the same table read backwards and converts with the BT.709 matrix (BT.2020 for
the Rec.2100 spaces) at limited range, as players expect. Writes go to a hidden temporary file
renamed over the target only when the whole movie is written.
"""
from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nightgrade.colorpipeline.errors import ColorError, InputError, OutputError, setting
from nightgrade.colorpipeline.io.atomic import atomic_target

MOVIE_EXTENSIONS = frozenset({".mov", ".mp4", ".m4v", ".mkv", ".mxf", ".avi"})

# FFmpeg's AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace / AVColorRange codes.
_BT709, _UNSET, _BT2020 = 1, 2, 9
_TRC_SRGB, _TRC_GAMMA22, _TRC_PQ, _TRC_HLG = 13, 4, 16, 18
_TRC_SDR = frozenset({1, 2, 6, 14, 15})  # BT.709, unset, SMPTE 170M, BT.2020 10/12-bit: one curve
_MATRIX = {1: "itu709", 5: "itu601", 6: "itu601", 9: "bt2020", 10: "bt2020"}
_FULL_RANGE = 2

TAGGED = {  # colourspace -> (primaries, transfer, matrix) written
    "Gamma 2.4 Encoded Rec.709": (_BT709, _BT709, _BT709),
    "sRGB Encoded Rec.709 (sRGB)": (_BT709, _TRC_SRGB, _BT709),
    "Gamma 2.2 Encoded Rec.709": (_BT709, _TRC_GAMMA22, _BT709),
    "Rec.2100-PQ - Display": (_BT2020, _TRC_PQ, _BT2020),
    "Rec.2100-HLG - Display": (_BT2020, _TRC_HLG, _BT2020),
}

# Extension -> (encoder, pixel format, options): ProRes 422 HQ for .mov, H.264 for .mp4.
_WRITERS = {".mov": ("prores", "yuv422p10le", {"profile": "3"}),
            ".mp4": ("h264", "yuv420p", {"crf": "16", "preset": "medium"})}


def is_movie(path: str) -> bool:
    """True for a path whose extension names a movie container."""
    return os.path.splitext(path)[1].lower() in MOVIE_EXTENSIONS


@dataclass(frozen=True)
class MovieInfo:
    """A movie's first video stream: size, frame count, rate, codec and colour tags (FFmpeg codes)."""

    path: str
    width: int
    height: int
    frames: int
    rate: Fraction
    codec: str
    primaries: int
    transfer: int
    matrix: int
    full_range: bool


def probe_movie(path: str) -> MovieInfo:
    """Open ``path``'s header; InputError naming the file (and the codec when it cannot be decoded)."""
    av = _av()
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        ctx = stream.codec_context
        frames = stream.frames or _count_frames(container, stream)
        return MovieInfo(path, ctx.width, ctx.height, frames, Fraction(stream.average_rate or 24), ctx.name,
                         ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range == _FULL_RANGE)
    except av.error.FFmpegError as err:
        raise InputError(f"{path} cannot be read: {err}") from None
    finally:
        container.close()


def tagged_colorspace(info: MovieInfo) -> str:
    """The OCIO colourspace its tags name (module doc table); ColorError when they name none."""
    for name, (primaries, transfer, _) in TAGGED.items():
        prim_ok = info.primaries == primaries or (primaries == _BT709 and info.primaries == _UNSET)
        trc_ok = info.transfer == transfer or (transfer == _BT709 and info.transfer in _TRC_SDR)
        if prim_ok and trc_ok:
            return name
    raise ColorError(f"{info.path} is tagged primaries {info.primaries}, transfer {info.transfer} (FFmpeg codes), "
                     f"which NightGrade does not map to a colourspace; pass {setting('input_colorspace')} NAME")


def read_movie(path: str, wanted: frozenset[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame number from 1, R'G'B' float32 H x W x 3 in [0, 1]) of each frame, or of ``wanted``."""
    av = _av()
    info = probe_movie(path)
    matrix = _MATRIX.get(info.matrix, "itu709" if info.height >= 720 else "itu601")  # as players guess
    container = _open(path)
    number = 0
    try:
        stream = _video_stream(container, path)
        last = max(wanted) if wanted else None
        for number, frame in enumerate(container.decode(stream), start=1):
            if last is not None and number > last:
                break
            if wanted is None or number in wanted:
                rgb = frame.reformat(format="rgb48le", src_colorspace=matrix, dst_colorspace=matrix,
                                     src_color_range="JPEG" if info.full_range else "MPEG", dst_color_range="JPEG")
                yield number, rgb.to_ndarray().astype(np.float32) / np.float32(65535.0)
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: frame {number + 1} cannot be decoded ({info.codec}): {err}") from None
    finally:
        container.close()


class MovieWriter:
    """Context manager: ``write(rgb)`` per frame (R'G'B' float H x W x 3, in ``colorspace``, one of
    ``TAGGED``); the movie appears at ``path`` only when the block ends without an error."""

    def __init__(self, path: str, width: int, height: int, rate: Fraction, colorspace: str) -> None:
        ext = os.path.splitext(path)[1].lower()
        if ext not in _WRITERS:
            raise OutputError(f"cannot write {path}: movies are written as {', '.join(_WRITERS)} "
                              "(ProRes 422 HQ, H.264); write an image sequence for other containers")
        if colorspace not in TAGGED:
            raise OutputError(f"cannot write {path} in '{colorspace}': a movie is tagged as one of "
                              f"{', '.join(repr(n) for n in TAGGED)}; pass {setting('output_colorspace')} with one of them")
        codec, self._pix_fmt, options = _WRITERS[ext]
        if self._pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise OutputError(f"cannot write {path}: H.264 4:2:0 needs an even width and height, not {width}x{height}; "
                              "use .mov (ProRes) or crop")
        self.path, self._width, self._height = path, width, height
        self._primaries, self._transfer, matrix = TAGGED[colorspace]
        self._matrix_code, self._matrix = matrix, _MATRIX[matrix]
        self._codec, self._options, self._rate = codec, options, rate
        self._target = atomic_target(path)
        self._container = self._stream = None

    def __enter__(self) -> MovieWriter:
        av = _av()
        temp = self._target.__enter__()
        try:
            self._container = av.open(temp, "w")
            stream = self._container.add_stream(self._codec, rate=self._rate, options=self._options)
            stream.width, stream.height, stream.pix_fmt = self._width, self._height, self._pix_fmt
            ctx = stream.codec_context
            ctx.color_primaries, ctx.color_trc, ctx.colorspace = self._primaries, self._transfer, self._matrix_code
            ctx.color_range = 1  # limited
            self._stream = stream
        except BaseException as err:
            self._abort(err)
            raise
        return self

    def write(self, rgb: np.ndarray) -> None:
        av = _av()
        codes = (np.clip(rgb, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(codes), format="rgb48le")
        frame = frame.reformat(format=self._pix_fmt, src_colorspace=self._matrix, dst_colorspace=self._matrix,
                               src_color_range="JPEG", dst_color_range="MPEG")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
            except BaseException as err:
                self._abort(err)
                raise
            self._target.__exit__(None, None, None)  # renames the finished movie into place
        else:
            self._abort(exc)

    def _abort(self, exc: BaseException) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        try:
            self._target.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file
        except BaseException:  # noqa: BLE001 - atomic_target re-raises the error it is given
            pass


def _av():
    try:
        import av
    except ImportError:
        raise InputError("movie files need PyAV: pip install av (it ships FFmpeg)") from None
    return av


def _open(path: str):
    av = _av()
    if not os.path.isfile(path):
        raise InputError(f"input {path} does not exist")
    try:
        return av.open(path)
    except av.error.FFmpegError as err:
        raise InputError(f"{path} cannot be opened as a movie: {err}") from None


def _video_stream(container, path: str):
    if not container.streams.video:
        raise InputError(f"{path} holds no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not _decodable(stream):
        raise InputError(f"{path}: its video codec '{_codec_name(stream, path)}' cannot be decoded by this "
                         "FFmpeg build (PyAV); convert it to ProRes, DNxHR or an image sequence first")
    return stream


def _decodable(stream) -> bool:
    av = _av()
    try:
        av.codec.Codec(stream.codec_context.name, "r")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return stream.codec_context.name not in ("", "none")


def _codec_name(stream, path: str) -> str:
    ctx = stream.codec_context
    name = ctx.name if ctx is not None and ctx.name not in ("", "none") else ""
    return name or _sample_entry_fourcc(path) or "unknown"


def _sample_entry_fourcc(path: str) -> str | None:
    """The video sample entry's four-character code of a QuickTime/MP4 file (its ``stsd`` box), for
    a codec FFmpeg does not know and therefore cannot name; None for other containers."""
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            at = data.find(b"stsd")
            if at < 4:
                return None
            code = data[at + 16:at + 20]  # box type, version+flags, entry count, entry size, then the code
    except (OSError, ValueError):
        return None
    return code.decode("ascii") if len(code) == 4 and code.isascii() and code.decode("ascii").isprintable() else None


def _count_frames(container, stream) -> int:
    """Streams without a frame count in the header: demux (no decoding) and count."""
    count = sum(1 for packet in container.demux(stream) if packet.size)
    container.seek(0)
    return count
