"""A cache of enhanced frames: in memory (LRU within a byte budget) and optionally on disk.

The temporal window (paper Sec. 3.4) needs each enhanced frame up to 13 times; the cache makes
every source frame go through the generator once. Keys come from :func:`frame_key`, a sha256
over everything that decides the enhanced pixels, so a key can never return pixels made by
another model, setting or source.

The disk tier writes one float EXR per key (``<dir>/<key[:2]>/<key>.exr``, lossless zip) through
the one atomic writer (``colorpipeline.atomic``), so farm chunks sharing a folder never read half
a file and can reuse each other's frames; a file damaged some other way fails to read, counts as
a disk error and is rewritten on the next ``put``. A disk hit is promoted to
memory. Disk failures while rendering (full or read-only storage) never fail a render: they
are counted in :class:`CacheStats` and the frame stays in memory.

Arrays given to ``put`` are copied; arrays returned by ``get`` are read-only views of the cached
copy (their WRITEABLE flag cannot be turned back on): ``.copy()`` one to modify it.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import OpenImageIO as oiio

from nightgrade.colorpipeline.errors import OutputError
from nightgrade.colorpipeline.io.atomic import atomic_target, remove_stale_temps

_KEY_SCHEME = b"nightgrade-frame-key-1"
_KEY_PATTERN = re.compile(r"[0-9a-f]{16,128}")
_KEY_ATTRIBUTE = "nightgrade:cachekey"
_NDIM_ATTRIBUTE = "nightgrade:ndim"


def frame_key(source_pixels: np.ndarray, model_digest: str, params: Mapping[str, Any]) -> str:
    """Hex sha256 identifying an enhanced frame: the source pixels (bytes, dtype and shape), the
    model's digest and every parameter that changes the output pixels (canonical JSON: key order
    does not matter; ``1``, ``1.0`` and ``True`` differ; tuples equal lists; numpy scalars, small
    arrays, paths, enums and dataclass configs are accepted). Contiguous pixels are hashed in
    place; a strided view is hashed row by row."""
    digest = hashlib.sha256()
    pixels = np.asarray(source_pixels)
    for part in (_KEY_SCHEME, _canonical_json(params), model_digest.encode("utf-8"),
                 f"{pixels.dtype.str}{pixels.shape}".encode("ascii")):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    if pixels.flags.c_contiguous:
        digest.update(pixels.reshape(-1).view(np.uint8))
    else:  # a strided view: copy one row at a time rather than the whole frame
        for row in pixels if pixels.ndim > 1 else (pixels,):
            digest.update(np.ascontiguousarray(row).reshape(-1).view(np.uint8))
    return digest.hexdigest()


def content_key(content_digest: str, model_digest: str, params: Mapping[str, Any]) -> str:
    """Hex sha256 like :func:`frame_key`, for pixels named by a digest computed elsewhere (the
    daemon's clients send a BLAKE2b digest of each frame, docs/protocol.md) instead of the pixels."""
    return frame_key(np.frombuffer(content_digest.encode("utf-8"), dtype=np.uint8), model_digest,
                     {"content": content_digest, **params})


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was made. ``hits``: found in memory; ``disk_hits``: found on disk
    (then promoted); ``misses``: found nowhere; ``bytes``/``items``: what memory holds now."""

    hits: int
    misses: int
    evictions: int
    bytes: int
    items: int
    disk_hits: int
    disk_writes: int
    disk_errors: int

    @property
    def hit_rate(self) -> float:
        """Share of ``get`` calls answered from memory or disk (0 before any call)."""
        found = self.hits + self.disk_hits
        return found / (found + self.misses) if found + self.misses else 0.0


class FrameCache:
    """Thread-safe LRU cache of float32 frames (``(H, W)`` or ``(H, W, C)``) within
    ``budget_bytes`` of memory, with an optional EXR tier in ``disk_dir`` (see the module doc).
    An array larger than the budget is not kept in memory (only on disk, if there is one); a
    budget of 0 keeps nothing in memory. No file is read or written while the lock is held."""

    def __init__(self, budget_bytes: int, disk_dir: str | os.PathLike[str] | None = None) -> None:
        if budget_bytes < 0:
            raise ValueError(f"cache budget {budget_bytes} bytes is negative")
        self._budget = int(budget_bytes)
        self._dir = None if disk_dir is None else os.path.abspath(os.fspath(disk_dir))
        if self._dir is not None:
            _check_folder(self._dir)
            for sub in os.listdir(self._dir):  # temp files of writers killed mid-write (<dir>/<key[:2]>/)
                if len(sub) == 2:
                    remove_stale_temps(os.path.join(self._dir, sub))
        self._lock = threading.Lock()
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._counts = dict.fromkeys(("hits", "misses", "evictions", "disk_hits", "disk_writes", "disk_errors"), 0)

    def get(self, key: str) -> np.ndarray | None:
        """The cached frame for ``key`` as a read-only array, or None."""
        _check_key(key)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self._counts["hits"] += 1
                return found.view()
        loaded, failed = self._read(key) if self._dir is not None else (None, False)
        with self._lock:
            self._counts["disk_errors"] += failed
            if loaded is None:
                self._counts["misses"] += 1
                return None
            self._counts["disk_hits"] += 1
            self._keep(key, loaded)
        return loaded.view()

    def put(self, key: str, array: np.ndarray) -> None:
        """Cache a copy of ``array`` under ``key`` (replacing any entry), and write it to the disk
        tier unless a file for ``key`` is already there."""
        _check_key(key)
        array = np.asarray(array)
        if array.dtype != np.float32 or array.ndim not in (2, 3) or 0 in array.shape:
            raise ValueError(f"frame cache holds non-empty float32 (H, W) or (H, W, C) arrays, "
                             f"got {array.dtype} {array.shape}")
        stored = np.array(array, dtype=np.float32, order="C", copy=True)
        stored.flags.writeable = False
        with self._lock:
            self._keep(key, stored)
        if self._dir is not None and not os.path.exists(self._path(key)):
            written = self._write(key, stored)
            with self._lock:
                self._counts["disk_writes" if written else "disk_errors"] += 1

    def contains(self, key: str) -> bool:
        """Whether ``get(key)`` would find the frame now (memory or disk), without counting a hit
        or promoting it: the daemon's HAVE/NEED answer (docs/protocol.md)."""
        _check_key(key)
        with self._lock:
            if key in self._items:
                return True
        return self._dir is not None and os.path.isfile(self._path(key))

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            return CacheStats(bytes=self._bytes, items=len(self._items), **self._counts)

    def _keep(self, key: str, array: np.ndarray) -> None:
        """Insert as most recently used and evict the least recently used past the budget (lock held)."""
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        if array.nbytes > self._budget:
            return
        while self._bytes + array.nbytes > self._budget:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= evicted.nbytes
            self._counts["evictions"] += 1
        self._items[key] = array
        self._bytes += array.nbytes

    def _path(self, key: str) -> str:
        assert self._dir is not None
        return os.path.join(self._dir, key[:2], f"{key}.exr")

    def _read(self, key: str) -> tuple[np.ndarray | None, bool]:
        """(pixels, False) from the disk tier; (None, False) when absent; (None, True) when the
        file is unreadable or not what this cache wrote for ``key``."""
        path = self._path(key)
        if not os.path.exists(path):
            return None, False
        image = oiio.ImageInput.open(path)
        if image is None:
            oiio.geterror()  # clear OIIO's per-thread error so it does not pile up
            return None, True
        try:
            spec = oiio.ImageSpec(image.spec())  # outlives the closed file
            ndim = spec.get_int_attribute(_NDIM_ATTRIBUTE, 0)
            if spec.get_string_attribute(_KEY_ATTRIBUTE, "") != key or ndim not in (2, 3) or \
                    spec.format != oiio.TypeDesc("float") or (ndim == 2 and spec.nchannels != 1):
                return None, True
            pixels = image.read_image("float")
        finally:
            image.close()
        if pixels is None:
            oiio.geterror()
            return None, True
        pixels = np.ascontiguousarray(pixels, dtype=np.float32).reshape(
            (spec.height, spec.width) if ndim == 2 else (spec.height, spec.width, spec.nchannels))
        pixels.flags.writeable = False
        return pixels, False

    def _write(self, key: str, array: np.ndarray) -> bool:
        """Write ``array`` to the disk tier through the one atomic writer; False on failure."""
        path = self._path(key)
        channels = 1 if array.ndim == 2 else array.shape[2]
        spec = oiio.ImageSpec(array.shape[1], array.shape[0], channels, "float")
        spec.attribute("compression", "zip")
        spec.attribute(_KEY_ATTRIBUTE, key)
        spec.attribute(_NDIM_ATTRIBUTE, array.ndim)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_target(path) as temp:
                output = oiio.ImageOutput.create(temp)
                if output is None:
                    raise OSError(oiio.geterror())
                ok = output.open(temp, spec) and output.write_image(array.reshape(array.shape[0], array.shape[1],
                                                                                  channels))
                ok = output.close() and ok
                error = output.geterror()  # a full disk may show only here
                if not ok or error:
                    raise OSError(error or "the EXR writer failed")
            return True
        except OSError:
            return False


def _canonical_json(params: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_jsonable)
    except TypeError as err:
        raise ValueError(f"frame key parameters must be JSON-like (str, number, bool, None, list, dict, "
                         f"numpy scalar, path, enum, dataclass): {err}") from err
    return text.encode("ascii")


def _jsonable(value: Any) -> Any:
    """JSON stand-ins for the non-JSON values a pixel-changing parameter may hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return {"ndarray": value.dtype.str, "shape": list(value.shape), "values": value.tolist()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, enum.Enum):
        return {type(value).__name__: value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: dataclasses.asdict(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} value {value!r} has no canonical form")


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise ValueError(f"cache key {key!r} is not a hex digest; make keys with frame_key()")


def _check_folder(folder: str) -> None:
    if not os.path.isdir(folder):
        raise OutputError(f"frame cache folder {folder} does not exist or is not a folder; create it or give another")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"frame cache folder {folder} is read-only; fix its permissions or give another")
