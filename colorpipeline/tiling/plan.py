"""Tile plan and 6-channel tile batches for patch-based inference (paper Sec. 3.1 and 3.3).

Each local tile is Nl x Nl; the region tile is the Nr x Nr neighbourhood with the same centre,
resized to Nl x Nl with area interpolation, and stacked after it: a 6-channel generator input
(local RGB first, then region RGB; Sec. 3.1). Tiles overlap at stride Nl/2 (Sec. 3.3); the
merge lives in :mod:`nightgrade.colorpipeline.tiling.merge`.

Frames are float32 ``H x W x 3``; batches are float32 ``(B, 6, Nl, Nl)`` channels-first, ready for
``torch.from_numpy``. Pixels outside the frame are reflected (``dcb|abcd|cba``, as numpy's
``reflect`` and torch's ``ReflectionPad2d``), repeatedly when the frame is smaller than a tile, by
gathering with reflected index arrays: a padded copy of the frame is never built (at 8K the region
margin alone would cost hundreds of MB).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import InputError, UsageError

# Rows of a band that leave the frame are gathered this many bytes at a time, so that a border
# band never costs a full-width Nr-row copy (92 MB at 8K).
_GATHER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TileConfig:
    """Tile geometry in pixels (Sec. 3.1, 3.3): the one owner of it. A checkpoint stores the
    geometry its model was trained for as a TileConfig (``models/checkpoint.py``); a render scales
    it for proxies with :meth:`scaled` (``server/render.tile_geometry`` adds the user's sizes).

    ``local`` is Nl, ``region`` is Nr (paper: 360 and 1000), ``stride`` the step between tile
    origins; ``None`` means Nl/2 as in the paper.
    """

    local: int = 360
    region: int = 1000
    stride: int | None = None

    def __post_init__(self) -> None:
        for name in ("local", "region", "stride"):
            value = getattr(self, name)
            if (value is not None or name != "stride") and (isinstance(value, bool) or not isinstance(value, int)):
                raise UsageError(f"tile {name} {value!r} is not a whole number of pixels")
        if self.local < 1:
            raise UsageError(f"tile size {self.local} is too small: use a local tile of at least 1 pixel")
        if self.region < self.local:
            raise UsageError(
                f"region size {self.region} is smaller than the local tile {self.local}: "
                "use a region at least as large as the local tile"
            )
        if self.stride is not None and not 1 <= self.stride <= self.local:
            raise UsageError(
                f"tile stride {self.stride} is outside 1..{self.local}: use a stride between 1 and the "
                "local tile size (the paper uses half of it)"
            )

    @property
    def step(self) -> int:
        """The stride actually used: ``stride``, or Nl/2 (at least 1) when it is ``None``."""
        return self.stride if self.stride is not None else max(1, self.local // 2)

    def scaled(self, scale: float, multiple: int = 1) -> TileConfig:
        """The same geometry for a render at ``scale`` (proxy renders: tile sizes are given at full
        resolution and scaled). ``local`` is rounded to a multiple of ``multiple`` (the generator's
        downsampling factor); a default stride stays half the local tile."""
        if not scale > 0:
            raise UsageError(f"render scale {scale} is not positive: use a scale greater than 0")
        if multiple < 1:
            raise ValueError(f"size multiple {multiple} is not positive")  # from the network's config: a bug
        local = max(multiple, math.floor(self.local * scale / multiple + 0.5) * multiple)
        region = max(local, math.floor(self.region * scale + 0.5))
        stride = None if self.stride is None else min(local, max(1, math.floor(self.stride * scale + 0.5)))
        return TileConfig(local=local, region=region, stride=stride)


def proxy_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(width, height) of a frame rendered at ``scale``: the one rounding every render path, the
    daemon's clients and farm resume use, so a proxy has the same size wherever it was made."""
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True, eq=False)
class TilePlan:
    """Where the tiles of one frame size go. Tiles run row-major: tile ``i`` has its top-left
    corner at ``(ys[i], xs[i])``; corners may lie outside the frame (reflected there)."""

    height: int
    width: int
    local: int
    region: int
    row_origins: np.ndarray
    col_origins: np.ndarray

    @property
    def count(self) -> int:
        return len(self.row_origins) * len(self.col_origins)

    @property
    def ys(self) -> np.ndarray:
        return np.repeat(self.row_origins, len(self.col_origins))

    @property
    def xs(self) -> np.ndarray:
        return np.tile(self.col_origins, len(self.row_origins))

    @property
    def region_offset(self) -> int:
        """How far the region's corner sits above/left of the local tile's corner (same centre;
        half a pixel up-left of it when Nr - Nl is odd)."""
        return (self.region - self.local + 1) // 2


def _axis_origins(size: int, local: int, stride: int) -> np.ndarray:
    """Tile origins along one axis of ``size`` pixels: ``0, stride, 2*stride, ...`` with the last
    tile pulled back flush with the far edge (``size - local``), as MONAI's sliding window does.

    This needs ``ceil((size - local) / stride) + 1`` tiles, the fewest at this stride that cover
    the axis without leaving it: a grid centring a tile on each edge pixel needed
    ``ceil(size / stride)`` (32 tiles for 1280x720 at Nl 360 where this needs 21), spending about
    a third of its work on reflected pixels outside the frame. Pixels near a frame edge then sit
    near a tile edge, where their Gaussian weight is small; they are covered by that one tile only
    along the axis, so the division in the merge returns its output whatever the weight (the merge
    floors weights, see ``tile_merge.WEIGHT_FLOOR``). An axis shorter than one tile gets one
    centred tile, reflected past both ends.
    """
    if size <= local:
        return np.array([-((local - size) // 2)], dtype=np.int64)
    count = -(-(size - local) // stride) + 1
    origins = stride * np.arange(count, dtype=np.int64)
    origins[-1] = size - local
    return origins


def plan_tiles(height: int, width: int, cfg: TileConfig) -> TilePlan:
    """The tile grid for a ``height x width`` frame (Sec. 3.3: tiles shifted by ``cfg.step``)."""
    if height < 1 or width < 1:
        raise InputError(f"frame size {width}x{height} is empty: the frame needs at least one pixel")
    return TilePlan(
        height=height,
        width=width,
        local=cfg.local,
        region=cfg.region,
        row_origins=_axis_origins(height, cfg.local, cfg.step),
        col_origins=_axis_origins(width, cfg.local, cfg.step),
    )


def reflect_indices(start: int, length: int, size: int) -> np.ndarray:
    """Indices ``start .. start+length-1`` folded into ``0 .. size-1`` by repeated reflection
    without repeating the edge pixel (``dcb|abcd|cba``); a 1-pixel axis maps everything to 0."""
    idx = np.arange(start, start + length, dtype=np.int64)
    if size == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (size - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= size, period - idx, idx)


def _span(start: int, length: int, size: int) -> slice | np.ndarray:
    """A slice when the span lies inside the axis (a view, no copy), else reflected indices."""
    if start >= 0 and start + length <= size:
        return slice(start, start + length)
    return reflect_indices(start, length, size)


def _take(array: np.ndarray, span: slice | np.ndarray, axis: int) -> np.ndarray:
    if isinstance(span, slice):
        return array[(slice(None),) * axis + (span,)]
    # Measured on strided views: fancy indexing gathers rows ~7x faster than np.take, np.take
    # gathers columns ~2x faster than fancy indexing.
    return array[span] if axis == 0 else np.take(array, span, axis=axis)


def _crop(array: np.ndarray, rows: slice | np.ndarray, cols: slice | np.ndarray) -> np.ndarray:
    """``array[rows, cols]``, slicing whichever axis allows it before gathering the other, so that
    a border tile never gathers whole frame rows."""
    if isinstance(rows, slice):
        return _take(array[rows], cols, 1)
    if isinstance(cols, slice):
        return _take(array[:, cols], rows, 0)
    return array[np.ix_(rows, cols)]


def _area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[0] == height and image.shape[1] == width:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _region_band(frame: np.ndarray, rows: slice | np.ndarray, local: int) -> np.ndarray:
    """The region rows of one tile row, shrunk vertically to Nl rows over the full frame width.

    INTER_AREA is separable (each output is a product of per-axis overlap weights), so shrinking
    the Nr-row band once per tile row and then each tile's Nr columns gives the same region tile
    as resizing each Nr x Nr crop (up to float rounding, ~1e-7) for about a quarter of the cost.
    """
    if isinstance(rows, slice):
        return _area_resize(frame[rows], frame.shape[1], local)
    width = frame.shape[1]
    band = np.empty((local, width, 3), dtype=np.float32)
    chunk = max(1, _GATHER_BYTES // (len(rows) * 3 * 4))
    for x0 in range(0, width, chunk):
        cols = slice(x0, min(width, x0 + chunk))
        band[:, cols] = _area_resize(_take(frame[:, cols], rows, 0), cols.stop - x0, local)
    return band


@dataclass(frozen=True, eq=False)
class TileBatch:
    """Tiles ``start .. start+len(ys)-1`` of a plan: their origins and their 6-channel inputs."""

    start: int
    ys: np.ndarray
    xs: np.ndarray
    inputs: np.ndarray = field(repr=False)


def check_frame(frame: np.ndarray) -> None:
    """Raise InputError unless ``frame`` is a float32 H x W x 3 array with at least one pixel."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise InputError(f"frame has shape {shape}, expected height x width x 3 RGB: pass an RGB image")
    if frame.dtype != np.float32:
        raise InputError(f"frame has dtype {frame.dtype}, expected float32: convert it with frame.astype(np.float32)")


def iter_tile_batches(frame: np.ndarray, plan: TilePlan, batch_size: int) -> Iterator[TileBatch]:
    """Yield the plan's tiles in order, ``batch_size`` at a time, as float32 ``(B, 6, Nl, Nl)``
    inputs: local RGB in channels 0-2, region RGB resized to Nl x Nl in channels 3-5 (Sec. 3.1).

    A generator: each batch is a fresh array built only when asked for; between batches it keeps
    only the current region band (Nl x W x 3, 33 MB at 8K). Yielded batches are the caller's to
    drop. A frame that is not C-contiguous is copied once (OpenCV needs contiguous rows).
    """
    check_frame(frame)
    if (frame.shape[0], frame.shape[1]) != (plan.height, plan.width):
        raise InputError(
            f"frame is {frame.shape[1]}x{frame.shape[0]} but the tile plan is for {plan.width}x{plan.height}: "
            "plan the tiles for this frame size"
        )
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} is not positive")  # the engine's choice: a bug, not a user's
    frame = np.ascontiguousarray(frame)
    nl, nr, off = plan.local, plan.region, plan.region_offset
    ncols = len(plan.col_origins)
    band_row, band = -1, np.empty((0, 0, 3), dtype=np.float32)
    for start in range(0, plan.count, batch_size):
        stop = min(plan.count, start + batch_size)
        inputs = np.empty((stop - start, 6, nl, nl), dtype=np.float32)
        ys = np.empty(stop - start, dtype=np.int64)
        xs = np.empty(stop - start, dtype=np.int64)
        for b, tile in enumerate(range(start, stop)):
            row, col = divmod(tile, ncols)
            y, x = int(plan.row_origins[row]), int(plan.col_origins[col])
            ys[b], xs[b] = y, x
            local = _crop(frame, _span(y, nl, plan.height), _span(x, nl, plan.width))
            inputs[b, :3] = local.transpose(2, 0, 1)
            if row != band_row:
                del band  # free the previous band before building the next one
                band_row, band = row, _region_band(frame, _span(y - off, nr, plan.height), nl)
            region = _take(band, _span(x - off, nr, plan.width), 1)
            inputs[b, 3:] = _area_resize(region, nl, nl).transpose(2, 0, 1)
        yield TileBatch(start=start, ys=ys, xs=xs, inputs=inputs)
