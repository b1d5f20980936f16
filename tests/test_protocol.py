"""Protocol v1 (docs/protocol.md): framing, validation of every RENDER rule, digests, pixel buffers, fuzz."""
from __future__ import annotations

import hashlib
import math

import msgpack
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import UsageError
from nightgrade.server import protocol as P

W, H = 6, 4


def _buffer(fmt: str = "float32", channels: int = 4, pad: int = 0, seed: int = 0) -> tuple[bytes, int]:
    pixels = np.random.default_rng(seed).random((H, W, channels)).astype(P.FORMATS[fmt])
    tight = pixels.reshape(H, -1).view(np.uint8)
    rows = np.concatenate([tight, np.full((H, pad), 0xAB, np.uint8)], axis=1)
    return rows.tobytes(), tight.shape[1] + pad


def _render(**changes):
    """A valid temporal RENDER (header, buffers) with one attached neighbour, then ``changes``."""
    centre, row_bytes = _buffer()
    near, _ = _buffer(seed=1)
    d_centre = P.digest_pixels(centre, W, H, 4, "float32", row_bytes)
    d_near = P.digest_pixels(near, W, H, 4, "float32", row_bytes)
    header = P.request(P.RENDER, "req-1", clip="shot010", frame=100, width=W, height=H, scale=1.0,
                       format="float32", channels=4, row_bytes=row_bytes, digest=d_centre,
                       params={"temporal": True, "radius": 2},
                       neighbours=[{"frame": 99, "digest": d_near}, {"frame": 101, "digest": d_centre}],
                       attached=[d_near])
    buffers = [centre, near]
    for key, value in changes.items():
        if key == "buffers":
            buffers = value
        elif value is _DROP:
            header.pop(key, None)
        else:
            header[key] = value
    return header, buffers


_DROP = object()


def _parse(header, buffers=(), limits=P.Limits()):
    return P.parse_request(P.decode(P.encode(header, buffers)), limits)


def test_valid_render_parses_with_defaults():
    header, buffers = _render()
    render = _parse(header, buffers)
    assert isinstance(render, P.Render)
    assert render.window == (0, 0, W, H) and render.priority == "batch" and render.deadline_ms is None
    assert render.params == P.RenderParams(temporal=True, radius=2)
    assert render.neighbours[0] == P.Neighbour(99, header["attached"][0])
    render.check_digests()
    assert np.array_equal(render.pixels(header["attached"][0]), render.pixels(header["neighbours"][0]["digest"]))


@pytest.mark.parametrize("change, code, field", [
    ({"width": 0}, P.BAD_MESSAGE, "width"),
    ({"width": True}, P.BAD_MESSAGE, "width"),
    ({"height": _DROP}, P.BAD_MESSAGE, "height"),
    ({"width": 16385}, P.TOO_LARGE, None),
    ({"scale": 0}, P.BAD_MESSAGE, "scale"),
    ({"scale": 1.5}, P.BAD_MESSAGE, "scale"),
    ({"scale": float("nan")}, P.BAD_MESSAGE, "scale"),
    ({"format": "float16"}, P.BAD_MESSAGE, "format"),
    ({"channels": 2}, P.BAD_MESSAGE, "channels"),
    ({"channels": 4.0}, P.BAD_MESSAGE, "channels"),
    ({"row_bytes": W * 4 * 4 - 1}, P.BAD_MESSAGE, "row_bytes"),
    ({"clip": ""}, P.BAD_MESSAGE, "clip"),
    ({"digest": "b2:" + "AB" * 16}, P.BAD_MESSAGE, "digest"),
    ({"window": [0, 0, W + 1, H]}, P.BAD_MESSAGE, "window"),
    ({"window": [2, 0, 2, H]}, P.BAD_MESSAGE, "window"),
    ({"window": [0, 0, W]}, P.BAD_MESSAGE, "window"),
    ({"window": []}, P.BAD_MESSAGE, "window"),
    ({"params": {"mix": 1.5}}, P.BAD_MESSAGE, "params.mix"),
    ({"params": {"luma_denoise": 1.5}}, P.BAD_MESSAGE, "params.luma_denoise"),
    ({"params": {"chroma_denoise": -0.5}}, P.BAD_MESSAGE, "params.chroma_denoise"),
    ({"params": {"detail": "all"}}, P.BAD_MESSAGE, "params.detail"),
    ({"params": {"temporal": "yes"}}, P.BAD_MESSAGE, "params.temporal"),
    ({"params": {"temporal": True, "radius": 7}}, P.BAD_MESSAGE, "params.radius"),
    ({"params": {"max_motion": 0}}, P.BAD_MESSAGE, "params.max_motion"),
    ({"params": {"tile": 256, "region": 128}}, P.BAD_MESSAGE, "params.region"),
    ({"params": [1]}, P.BAD_MESSAGE, "params"),
    ({"priority": "urgent"}, P.BAD_MESSAGE, "priority"),
    ({"deadline_ms": 0}, P.BAD_MESSAGE, "deadline_ms"),
    ({"attached": ["b2:" + "0" * 32]}, P.BAD_MESSAGE, "attached[0]"),
    ({"buffers": [b""]}, P.BAD_BUFFER, None),
    ({"buffers": [b"x" * (W * 16 * H)] * 3}, P.BAD_BUFFER, None),
    ({"buffers": [b"x" * (W * 16 * H), b"x" * (W * 16 * H - 1)]}, P.BAD_BUFFER, None),
])
def test_render_rules(change, code, field):
    header, buffers = _render(**change)
    with pytest.raises(P.ProtocolError) as caught:
        _parse(header, buffers)
    assert (caught.value.code, caught.value.extra.get("field"), caught.value.request_id) == (code, field, "req-1")
    if code == P.TOO_LARGE:
        assert caught.value.extra["limits"]["max_width"] == 16384


def test_neighbour_rules():
    header, buffers = _render()
    digest = header["digest"]
    for neighbours, field in [([{"frame": 100, "digest": digest}], "neighbours[0].frame"),
                              ([{"frame": 103, "digest": digest}], "neighbours[0].frame"),
                              ([{"frame": 99, "digest": digest}, {"frame": 99, "digest": digest}],
                               "neighbours[1].frame"),
                              ([{"frame": 99}], "neighbours[0].digest"),
                              (["b2:"], "neighbours[0]")]:
        with pytest.raises(P.ProtocolError) as caught:
            _parse({**header, "neighbours": neighbours, "attached": []}, buffers[:1])
        assert caught.value.extra["field"] == field
    duplicate = {**header, "attached": header["attached"] * 2}
    with pytest.raises(P.ProtocolError, match="at most once"):
        _parse(duplicate, buffers + buffers[1:])
    with pytest.raises(P.ProtocolError) as caught:
        _parse(header, buffers, P.Limits(max_neighbours=1))
    assert caught.value.code == P.TOO_LARGE


def test_pixel_and_frame_limits():
    header, buffers = _render()
    with pytest.raises(P.ProtocolError) as caught:
        _parse(header, buffers, P.Limits(max_pixels=W * H - 1))
    assert caught.value.code == P.TOO_LARGE
    with pytest.raises(P.ProtocolError) as caught:
        _parse(header, buffers, P.Limits(max_frame_bytes=W * 16 * H - 1))
    assert caught.value.code == P.TOO_LARGE
    assert P.Limits().max_frame_bytes >= 8192 * 4608 * 16 and P.Limits(max_pixels=10).max_frame_bytes >= 160
    with pytest.raises(UsageError):
        P.Limits(max_queue=0)


def test_digest_mismatch_is_bad_buffer_with_id():
    header, buffers = _render()
    corrupt = bytearray(buffers[1])
    corrupt[5] ^= 1
    render = _parse(header, [buffers[0], bytes(corrupt)])
    with pytest.raises(P.ProtocolError) as caught:
        render.check_digests()
    assert (caught.value.code, caught.value.request_id) == (P.BAD_BUFFER, "req-1")


def test_decode_common_fields():
    def code_of(frames, reply=False):
        with pytest.raises(P.ProtocolError) as caught:
            P.decode(frames, reply=reply)
        return caught.value.code, caught.value.request_id, caught.value.extra.get("field")

    pack = msgpack.packb
    assert code_of([]) == (P.BAD_MESSAGE, None, "header")
    assert code_of([b"\xc1"]) == (P.BAD_MESSAGE, None, "header")
    assert code_of([pack([1, 2])]) == (P.BAD_MESSAGE, None, "header")
    assert code_of([pack({1: 2})]) == (P.BAD_MESSAGE, None, "header")
    assert code_of([pack({"v": 1, "type": "PING"})]) == (P.BAD_MESSAGE, None, "id")
    assert code_of([pack({"v": 1, "type": "PING", "id": "x" * 65})]) == (P.BAD_MESSAGE, None, "id")
    assert code_of([pack({"type": "PING", "id": "a"})]) == (P.BAD_MESSAGE, "a", "v")
    assert code_of([pack({"v": True, "type": "PING", "id": "a"})]) == (P.BAD_MESSAGE, "a", "v")
    assert code_of([pack({"v": 1, "type": "RESULT", "id": "a"})]) == (P.BAD_MESSAGE, "a", "type")
    assert code_of([pack({"v": 1, "type": "RENDER", "id": "a"})], reply=True) == (P.BAD_MESSAGE, "a", "type")
    assert code_of([pack({"v": 2, "type": "PING", "id": "a"})]) == (P.BAD_VERSION, "a", None)
    assert code_of([b"\xdd\xff\xff\xff\xff"]) == (P.BAD_MESSAGE, None, "header")  # claims 4 G elements
    assert code_of([b"\x80" * (P.MAX_HEADER_BYTES + 1)]) == (P.BAD_MESSAGE, None, "header")
    assert code_of([b"\x91" * 100000 + b"\x00"]) == (P.BAD_MESSAGE, None, "header")  # nested too deep
    assert code_of([pack({"v": 1, "type": "PING", "id": "a"}) + b"\x00"]) == (P.BAD_MESSAGE, None, "header")
    error = P.decode(P.encode(P.error_reply(None, P.BAD_MESSAGE, "x")), reply=True)
    assert (error.type, error.id) == (P.ERROR, None)


def test_hello_is_read_at_any_version_and_negotiates():
    hello = _parse(P.request(P.HELLO, "h", versions=[3, 1, 2], client="ofx 1.0") | {"v": 3})
    assert isinstance(hello, P.Hello) and P.negotiate_version(hello) == 1
    with pytest.raises(P.ProtocolError) as caught:
        P.negotiate_version(_parse(P.request(P.HELLO, "h", versions=[2])))
    assert (caught.value.code, caught.value.extra["supported"], caught.value.request_id) == (P.BAD_VERSION, [1], "h")
    for versions in ([], [1.0], "1", None):
        with pytest.raises(P.ProtocolError):
            _parse(P.request(P.HELLO, "h", versions=versions))


def test_other_requests():
    assert _parse(P.request(P.CANCEL, "c", target="r1")) == P.Cancel("c", 1, "r1")
    assert isinstance(_parse(P.request(P.PING, "p")), P.Ping)
    assert isinstance(_parse(P.request(P.STATS, "s")), P.Stats)
    digest = "b2:" + "0" * 32
    have = _parse(P.request(P.HAVE, "h", width=8, height=8, scale=0.5, format="half", channels=3,
                            digests=[digest], params={"temporal": True}))
    assert isinstance(have, P.Have) and have.digests == (digest,) and have.clip is None
    with pytest.raises(P.ProtocolError) as caught:
        _parse(P.request(P.PING, "p"), [b"x"])
    assert caught.value.code == P.BAD_BUFFER
    with pytest.raises(P.ProtocolError) as caught:
        _parse(P.request(P.HAVE, "h", width=8, height=8, scale=1, format="half", channels=3, digests=["x"]))
    assert caught.value.extra["field"] == "digests[0]"
    with pytest.raises(P.ProtocolError):
        _parse(P.request(P.CANCEL, "c"))


def test_digest_known_vector_and_padding():
    tight, row_bytes = _buffer("half", 4)
    assert P.digest_pixels(tight, W, H, 4, "half", row_bytes) == \
        "b2:" + hashlib.blake2b(tight, digest_size=16).hexdigest()
    assert P.digest_pixels(bytes(12), 1, 1, 3, "float32", 12) == "b2:5cf0479a381380026a05c1e7bc18bfbb"
    padded, padded_row = _buffer("half", 4, pad=10)
    assert padded_row == row_bytes + 10
    assert P.digest_pixels(padded, W, H, 4, "half", padded_row) == P.digest_pixels(tight, W, H, 4, "half", row_bytes)
    with pytest.raises(P.ProtocolError) as caught:
        P.check_digest(padded, W, H, 4, "half", padded_row, "b2:" + "0" * 32)
    assert caught.value.code == P.BAD_BUFFER
    with pytest.raises(P.ProtocolError):
        P.digest_pixels(padded[:-1], W, H, 4, "half", padded_row)


def test_buffer_to_array_views_float32_and_converts_half():
    padded, row_bytes = _buffer("float32", 4, pad=8)
    source = bytearray(padded)
    pixels = P.buffer_to_array(source, W, H, 4, "float32", row_bytes)
    assert pixels.shape == (H, W, 4) and pixels.dtype == np.float32
    assert np.shares_memory(pixels, np.frombuffer(source, np.uint8))
    expected = np.random.default_rng(0).random((H, W, 4)).astype(np.float32)
    assert np.array_equal(pixels, expected)
    half, half_row = _buffer("half", 3, pad=6)
    converted = P.buffer_to_array(half, W, H, 3, "half", half_row)
    assert converted.dtype == np.float32
    assert np.array_equal(converted, np.random.default_rng(0).random((H, W, 3)).astype(np.float16).astype(np.float32))


def test_array_to_buffer_round_trip():
    pixels = np.random.default_rng(3).random((H, W, 4)).astype(np.float32)
    view, row_bytes = P.array_to_buffer(pixels, "float32")
    assert row_bytes == W * 16 and np.shares_memory(np.frombuffer(view, np.uint8), pixels)
    assert np.array_equal(P.buffer_to_array(view, W, H, 4, "float32", row_bytes), pixels)
    view, row_bytes = P.array_to_buffer(pixels[:, ::-1] * 1e6, "half")  # strided, overflows half
    back = P.buffer_to_array(view, W, H, 4, "half", row_bytes)
    with np.errstate(over="ignore"):
        expected = (pixels[0, -1] * 1e6).astype(np.float16).astype(np.float32)
    assert row_bytes == W * 8 and np.isinf(back).any() and np.array_equal(back[0, 0], expected)
    with pytest.raises(P.ProtocolError):
        P.array_to_buffer(pixels[..., :2], "float32")


def test_encode_passes_arrays_as_bytes_and_replies_are_one_line():
    pixels = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    frames = P.encode({"k": np.int64(3)}, [pixels, pixels[:, ::2]])
    assert msgpack.unpackb(frames[0]) == {"k": 3}
    assert bytes(frames[1]) == pixels.tobytes() and bytes(frames[2]) == pixels[:, ::2].tobytes()
    err = P.ProtocolError(P.BUSY, "queue\nfull", "r", queue=64, retry_after_ms=500)
    message = P.decode(P.encode(err.reply()), reply=True)
    assert message.header == {"v": 1, "type": "ERROR", "id": "r", "code": "BUSY", "message": "queue full",
                              "queue": 64, "retry_after_ms": 500}
    with pytest.raises(ValueError):
        P.error_reply("r", "NOPE", "x")
    assert P.split_envelope([b"id", b"", b"h", b"p"]) == ([b"id", b""], [b"h", b"p"])
    assert P.split_envelope([b"id", b"h"]) == ([b"id"], [b"h"])


def _junk(rng: np.random.Generator, depth: int = 0):
    kind = rng.integers(0, 11 if depth < 3 else 8)
    if kind == 0:
        values = [0, 1, -1, 3, 4, 7, 2**31, 2**63 - 1, -(2**63), 2**64 - 1]
        return values[rng.integers(0, len(values))]
    if kind == 1:
        return float(rng.choice([0.0, 0.5, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e300]))
    if kind == 2:
        return str(rng.choice(["", "RENDER", "float32", "half", "b2:" + "0" * 32, "x" * 300, "\u00e9\u6f22"]))
    if kind == 3:
        return bytes(rng.integers(0, 256, rng.integers(0, 8), dtype=np.uint8))
    if kind in (4, 5):
        return bool(kind == 4)
    if kind in (6, 7):
        return None
    if kind in (8, 9):
        return [_junk(rng, depth + 1) for _ in range(rng.integers(0, 5))]
    keys = ["frame", "digest", "mix", "radius", "tile", "temporal", "x", 1]
    return {keys[rng.integers(0, len(keys))] if rng.random() < 0.9 else "k": _junk(rng, depth + 1)
            for _ in range(rng.integers(0, 4))}


def test_fuzz_only_protocol_errors():
    rng = np.random.default_rng(20240601)
    limits = P.Limits(max_width=64, max_height=64, max_pixels=2048)
    base, buffers = _render()
    outcomes = {"ok": 0}
    for i in range(4000):
        mode = i % 5
        if mode == 0:
            frames = [bytes(rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8))]
        elif mode == 1:
            frames = [msgpack.packb(_junk(rng), use_bin_type=True)]
        elif mode in (2, 3):
            header = dict(base)
            for key in rng.choice(sorted(header), rng.integers(1, 3), replace=False):
                header[key] = _junk(rng) if rng.random() < 0.8 else None
            if mode == 3:
                header["type"] = str(rng.choice(sorted(P.REQUEST_TYPES)))
            count = int(rng.integers(0, 4))
            frames = P.encode(header, [buffers[0][:int(rng.integers(0, len(buffers[0]) + 1))]
                                       if rng.random() < 0.3 else buffers[0]] * count)
        else:
            packed = bytearray(P.encode(base)[0])
            for _ in range(rng.integers(1, 4)):
                packed[rng.integers(0, len(packed))] = rng.integers(0, 256)
            frames = [bytes(packed[:rng.integers(1, len(packed) + 1)]), *buffers]
        try:
            request = P.parse_request(P.decode(frames), limits)
            if isinstance(request, P.Render):
                request.check_digests()
            outcomes["ok"] += 1
        except P.ProtocolError as err:
            assert err.code in P.ERROR_CODES and "\n" not in err.message and err.message
            assert err.request_id is None or isinstance(err.request_id, str)
            outcomes[err.code] = outcomes.get(err.code, 0) + 1
        try:
            P.decode(frames, reply=True)
        except P.ProtocolError:
            pass
    assert outcomes[P.BAD_MESSAGE] > 1000 and outcomes["ok"] > 0 and P.BAD_BUFFER in outcomes
