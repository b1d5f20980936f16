"""Frame keys and the two-tier (memory LRU + EXR on disk) frame cache."""
from __future__ import annotations

import enum
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nightgrade.colorpipeline.errors import OutputError
from nightgrade.colorpipeline.temporal.average import TemporalConfig
from nightgrade.server.render.frame_cache import FrameCache, frame_key

PARAMS = {"tile": 360, "region": 1000, "temporal": TemporalConfig(), "colourspace": "ACEScg", "gain": 1.5}


def _pixels(seed: int = 0, shape: tuple[int, ...] = (6, 7, 3)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _key(n: int) -> str:
    return frame_key(np.full((1,), n, np.float32), "model", {})


# --- keys -----------------------------------------------------------------------------------


def test_key_is_stable_for_equal_inputs() -> None:
    pixels = _pixels()
    key = frame_key(pixels, "sha256:abc", PARAMS)
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    assert frame_key(pixels, "sha256:abd", PARAMS) != key and frame_key(pixels + 1e-3, "sha256:abc", PARAMS) != key
    assert frame_key(pixels.copy(), "sha256:abc", dict(reversed(list(PARAMS.items())))) == key
    assert frame_key(pixels, "sha256:abc", {**PARAMS, "tile": np.int64(360)}) == key
    assert frame_key(pixels, "sha256:abc", {**PARAMS, "temporal": TemporalConfig(radius=6)}) == key


def test_key_of_a_strided_view_equals_the_key_of_its_copy() -> None:
    wide = _pixels(shape=(6, 7, 4))
    assert frame_key(wide[..., :3], "m", {}) == frame_key(np.ascontiguousarray(wide[..., :3]), "m", {})
    assert frame_key(wide[::2, 1:], "m", {}) == frame_key(wide[::2, 1:].copy(), "m", {})


def test_key_changes_with_every_input() -> None:
    pixels = _pixels()
    base = frame_key(pixels, "sha256:abc", PARAMS)
    one_pixel = pixels.copy()
    one_pixel[3, 4, 1] = np.nextafter(one_pixel[3, 4, 1], np.float32(2))
    variants = [
        frame_key(one_pixel, "sha256:abc", PARAMS),
        frame_key(pixels.reshape(7, 6, 3), "sha256:abc", PARAMS),  # same bytes, other shape
        frame_key(pixels.view(np.int32), "sha256:abc", PARAMS),  # same bytes, other dtype
        frame_key(pixels, "sha256:abd", PARAMS),
        frame_key(pixels, "sha256:abc", {**PARAMS, "tile": 361}),
        frame_key(pixels, "sha256:abc", {**PARAMS, "gain": 1.5000001}),
        frame_key(pixels, "sha256:abc", {**PARAMS, "temporal": TemporalConfig(max_motion=128.0)}),
        frame_key(pixels, "sha256:abc", {**PARAMS, "extra": None}),
        frame_key(pixels, "sha256:abc", {k: v for k, v in PARAMS.items() if k != "colourspace"}),
        frame_key(pixels, "sha256:abc", {**PARAMS, "tile": 360.0}),
        frame_key(pixels, "", {**PARAMS, "sha256:abc": None}),  # parts cannot slide into each other
    ]
    assert len({base, *variants}) == len(variants) + 1


class _Mode(enum.Enum):
    FAST = "fast"


@dataclass(frozen=True)
class _Opaque:
    handle: object


def test_key_accepts_common_parameter_types_and_refuses_others() -> None:
    params = {"path": Path("/models/a.safetensors"), "mode": _Mode.FAST, "matrix": np.eye(3, dtype=np.float32),
              "channels": {"B", "G", "R"}, "scale": np.float32(0.5)}
    assert frame_key(_pixels(), "m", params) == frame_key(_pixels(), "m", dict(params))
    with pytest.raises(ValueError, match="JSON-like"):
        frame_key(_pixels(), "m", {"handle": _Opaque(object())})


# --- memory tier ----------------------------------------------------------------------------


def test_lru_evicts_the_least_recently_used_within_the_byte_budget() -> None:
    frames = {n: _pixels(n, (10, 10, 3)) for n in range(4)}
    size = frames[0].nbytes
    cache = FrameCache(3 * size + size // 2)
    for n in range(3):
        cache.put(_key(n), frames[n])
    assert cache.get(_key(0)) is not None  # 0 becomes the most recently used
    cache.put(_key(3), frames[3])  # evicts 1, the least recently used
    assert cache.get(_key(1)) is None
    for n in (0, 2, 3):
        assert np.array_equal(cache.get(_key(n)), frames[n])
    stats = cache.stats()
    assert (stats.items, stats.bytes, stats.evictions) == (3, 3 * size, 1)
    assert (stats.hits, stats.misses, stats.disk_hits) == (4, 1, 0)
    assert stats.hit_rate == pytest.approx(0.8)


def test_replacing_a_key_keeps_the_byte_count_right() -> None:
    cache = FrameCache(10_000)
    cache.put(_key(0), _pixels(0, (10, 10, 3)))
    cache.put(_key(0), _pixels(1, (5, 5, 3)))
    assert np.array_equal(cache.get(_key(0)), _pixels(1, (5, 5, 3)))
    assert (cache.stats().items, cache.stats().bytes) == (1, 5 * 5 * 3 * 4)


def test_an_item_larger_than_the_budget_is_not_kept_in_memory() -> None:
    small, big = _pixels(0, (4, 4, 3)), _pixels(1, (40, 40, 3))
    cache = FrameCache(big.nbytes - 1)
    cache.put(_key(0), small)
    cache.put(_key(1), big)
    assert cache.get(_key(1)) is None and np.array_equal(cache.get(_key(0)), small)
    assert (cache.stats().items, cache.stats().evictions) == (1, 0)


def test_cached_arrays_cannot_be_changed_through_put_or_get() -> None:
    cache = FrameCache(1 << 20)
    original = _pixels()
    given = original.copy()
    cache.put(_key(0), given)
    given[:] = 0  # the caller reuses its buffer
    returned = cache.get(_key(0))
    assert np.array_equal(returned, original)
    with pytest.raises(ValueError):
        returned[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        returned.flags.writeable = True
    assert np.array_equal(cache.get(_key(0)), original)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float64), np.zeros((4,), np.float32),
                                 np.zeros((0, 4, 3), np.float32)])
def test_put_refuses_what_the_cache_cannot_hold(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="float32"):
        FrameCache(1 << 20).put(_key(0), bad)


def test_keys_must_be_digests() -> None:
    with pytest.raises(ValueError, match="hex digest"):
        FrameCache(1 << 20).get("../../etc/passwd")


# --- disk tier ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(9, 11, 3), (9, 11), (5, 6, 7)])
def test_disk_tier_round_trips_float32_exactly(tmp_path: Path, shape: tuple[int, ...]) -> None:
    pixels = _pixels(0, shape) * np.float32(1e4) - np.float32(3e3)
    pixels.flat[:4] = [np.float32(1e-30), np.float32(3.4e38), np.float32(-0.0), np.float32(1 / 3)]
    key = frame_key(pixels, "m", {})
    FrameCache(0, tmp_path).put(key, pixels)  # memory off: the value can only come from disk
    found = FrameCache(0, tmp_path).get(key)
    assert found is not None and found.dtype == np.float32 and found.shape == pixels.shape
    assert found.tobytes() == pixels.tobytes()


def test_two_caches_on_one_folder_share_frames_and_promote_disk_hits(tmp_path: Path) -> None:
    writer, reader = FrameCache(1 << 20, tmp_path), FrameCache(1 << 20, tmp_path)
    pixels = _pixels()
    writer.put(_key(0), pixels)
    assert writer.stats().disk_writes == 1
    assert np.array_equal(reader.get(_key(0)), pixels)
    assert np.array_equal(reader.get(_key(0)), pixels)
    stats = reader.stats()
    assert (stats.disk_hits, stats.hits, stats.misses, stats.items) == (1, 1, 0, 1)
    reader.put(_key(0), pixels)  # already on disk: not written again
    assert reader.stats().disk_writes == 0
    assert [name for _, _, names in os.walk(tmp_path) for name in names] == [f"{_key(0)}.exr"]


def test_a_damaged_disk_file_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    cache = FrameCache(0, tmp_path)
    cache.put(_key(0), _pixels())
    path = tmp_path / _key(0)[:2] / f"{_key(0)}.exr"
    path.write_bytes(path.read_bytes()[:100])
    assert cache.get(_key(0)) is None
    assert (cache.stats().misses, cache.stats().disk_errors) == (1, 1)
    path.unlink()
    cache.put(_key(0), _pixels())
    assert np.array_equal(FrameCache(0, tmp_path).get(_key(0)), _pixels())


def test_a_disk_file_under_another_key_is_not_trusted(tmp_path: Path) -> None:
    cache = FrameCache(0, tmp_path)
    cache.put(_key(0), _pixels())
    renamed = tmp_path / _key(1)[:2] / f"{_key(1)}.exr"
    renamed.parent.mkdir(exist_ok=True)
    renamed.write_bytes((tmp_path / _key(0)[:2] / f"{_key(0)}.exr").read_bytes())
    assert cache.get(_key(1)) is None and cache.stats().disk_errors == 1
    assert cache.get(_key(0)) is not None


def test_a_missing_disk_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        FrameCache(1 << 20, tmp_path / "absent")


# --- threads --------------------------------------------------------------------------------


def test_concurrent_puts_and_gets_return_only_correct_frames(tmp_path: Path) -> None:
    keys = {_key(n): n for n in range(24)}
    frame = np.zeros((16, 16, 3), np.float32)
    cache = FrameCache(6 * frame.nbytes, tmp_path)  # far fewer slots than keys: constant eviction
    errors: list[str] = []
    gets = [0] * 8
    put: set[str] = set()  # keys put at least once (set.add is atomic under the GIL)

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        stop = time.monotonic() + 0.5
        for _ in range(3000):
            if time.monotonic() > stop:
                break
            key = list(keys)[rng.integers(len(keys))]
            if rng.random() < 0.4:
                cache.put(key, frame + np.float32(keys[key]))
                put.add(key)
            else:
                gets[seed] += 1
                found = cache.get(key)
                if found is not None and not np.all(found == keys[key]):
                    errors.append(f"{keys[key]} returned {np.unique(found)}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = cache.stats()
    assert stats.hits + stats.disk_hits + stats.misses == sum(gets) > 0
    assert stats.items <= 6 and stats.bytes == stats.items * frame.nbytes
    assert stats.evictions > 0 and stats.disk_errors == 0
    assert put
    for key in put:  # every frame ever put is on disk, whole
        found = FrameCache(0, tmp_path).get(key)
        assert found is not None and np.all(found == keys[key]), key
