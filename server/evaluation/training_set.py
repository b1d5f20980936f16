"""`nightgrade sample-data --full DIR`: the full training set of real footage (issue 14, item 1).

A preparation step, not part of tests or renders: it fetches the Debian packages named in
``server/evaluation/training_sources.py`` with ``apt-get download`` (into a cache folder, so a rebuild needs
no network), unpacks each with ``dpkg-deb -x`` into a temporary folder (nothing is installed),
and writes every usable photograph or video frame as an 8-bit sRGB PNG::

    DIR/clean/<package>/<name>.png   clean frames, long side at most ``max_side`` px
    DIR/licences/<package>.copyright the package's copyright file, as shipped
    DIR/manifest.json                per frame: package, version, file, frame index, licence,
                                     sha256 of the source file and of the PNG

Training pairs are made from these clean frames on the fly by the camera model
(``colorpipeline.lowlight.draw_camera``), so the set holds clean frames only. Near-duplicates
(one wallpaper at several sizes, the same picture in two packages) are dropped by a 64-bit
difference hash. The build goes to a hidden sibling folder renamed to DIR at the end: DIR never
holds half a set.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import InputError, OutputError, setting
from nightgrade.server.evaluation.training_sources import (EMBEDDED_EXTENSIONS, SOURCES, STILL_EXTENSIONS, VIDEO_EXTENSIONS,
                                                           Source, check_sources)

MANIFEST_FORMAT = "nightgrade-training-set/1"
#: A picture whose 256-px thumbnail is this flat (share of pixels with |Laplacian| < 0.5 code
#: values) is a drawing, not a photograph (measured on Scratch's backgrounds: drawings >= 0.35,
#: photographs <= 0.23).
FLAT_LIMIT = 0.3
#: Two stills whose difference hashes differ in at most this many of 64 bits are one picture.
DUPLICATE_BITS = 5
#: A video frame is kept when it differs from the clip's last kept frame by at least this mean
#: absolute difference (on [0, 1]): a new moment of the clip, not a repeat of a static shot.
VIDEO_CHANGE = 0.01


@dataclass(frozen=True)
class FullSetConfig:
    out_dir: str
    cache_dir: str
    max_side: int = 1024
    min_side: int = 200


def build_full_set(cfg: FullSetConfig, sources: tuple[Source, ...] = SOURCES, overwrite: bool = False,
                   log=print) -> dict:
    """Fetch, unpack and select; return the manifest. InputError/OutputError with one line."""
    check_sources(sources)
    if os.path.exists(cfg.out_dir) and not overwrite:
        raise OutputError(f"{cfg.out_dir} already exists; choose another folder or pass {setting('force')}")
    parent = os.path.dirname(os.path.abspath(cfg.out_dir))
    os.makedirs(parent, exist_ok=True)
    os.makedirs(cfg.cache_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(cfg.out_dir)}.", dir=parent)
    try:
        manifest = _build(work, cfg, sources, log)
        if os.path.exists(cfg.out_dir):
            shutil.rmtree(cfg.out_dir)
        os.replace(work, cfg.out_dir)
        return manifest
    finally:
        if os.path.exists(work):
            shutil.rmtree(work, ignore_errors=True)


def _build(work: str, cfg: FullSetConfig, sources: tuple[Source, ...], log) -> dict:
    frames: list[dict] = []
    hashes: list[int] = []
    packages: dict[str, dict] = {}
    os.makedirs(os.path.join(work, "licences"))
    for source in sources:
        deb = fetch_deb(source.package, cfg.cache_dir)
        version = _deb_field(deb, "Version")
        with tempfile.TemporaryDirectory(prefix="nightgrade-deb-") as root:
            _run(["dpkg-deb", "-x", deb, root], f"cannot unpack {os.path.basename(deb)}")
            licence = _copy_licence(root, source.package, work)
            taken = 0
            previous = None  # the clip's last kept frame
            for path in _selected_files(root, source):
                rel = os.path.relpath(path, root)
                digest = _sha256(path)
                in_sequence = any(part in path for part in source.sequences)
                in_clip = in_sequence or path.lower().endswith(VIDEO_EXTENSIONS)
                if not in_sequence:
                    previous = None  # a new clip (a still sequence carries on from its last kept frame)
                for index, rgb in _frames_of(path, source):
                    if min(rgb.shape[:2]) < cfg.min_side or (source.photo_filter and not looks_like_photo(rgb)):
                        continue
                    if in_clip:
                        if previous is not None and previous.shape == rgb.shape \
                                and float(np.mean(np.abs(rgb - previous))) < VIDEO_CHANGE:
                            continue
                        previous = rgb
                    else:
                        h = difference_hash(rgb)
                        if any(bin(h ^ other).count("1") <= DUPLICATE_BITS for other in hashes):
                            continue
                        hashes.append(h)
                    name = _frame_name(rel, index)
                    out = os.path.join(work, "clean", source.package, name)
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    png = _write_png(out, _fit(rgb, cfg.max_side))
                    frames.append({"path": os.path.relpath(out, work), "package": source.package, "version": version,
                                   "file": rel, "frame": index, "licence": licence,
                                   "source_sha256": digest, "sha256": png})
                    taken += 1
        packages[source.package] = {"version": version, "frames": taken,
                                    "licence_file": f"licences/{source.package}.copyright"}
        log(f"sample-data --full: {source.package} {version}: {taken} frame(s)")
    if not frames:
        raise InputError("no usable frames found in the training sources")
    manifest = {"format": MANIFEST_FORMAT, "frames": frames, "packages": packages,
                "max_side": cfg.max_side, "count": len(frames)}
    with open(os.path.join(work, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def fetch_deb(package: str, cache_dir: str) -> str:
    """The cached ``.deb`` of ``package``, downloaded with ``apt-get download`` when missing."""
    found = sorted(glob.glob(os.path.join(cache_dir, f"{package}_*.deb")))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise InputError(f"package {package} is not in {cache_dir} and apt-get is not available to fetch it")
    _run(["apt-get", "download", "-q", package], f"cannot download Debian package {package} "
         "(run `apt-get update` first, or put its .deb in the cache folder)", cwd=cache_dir)
    found = sorted(glob.glob(os.path.join(cache_dir, f"{package}_*.deb")))
    if not found:
        raise InputError(f"apt-get download {package} wrote no .deb into {cache_dir}")
    return found[-1]


def looks_like_photo(rgb: np.ndarray) -> bool:
    """False for drawings: too much of the picture is perfectly flat (see FLAT_LIMIT)."""
    grey = cv2.cvtColor(cv2.resize(_u8(rgb), (256, 256), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    lap = np.abs(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F))
    return float((lap < 0.5).mean()) < FLAT_LIMIT


def difference_hash(rgb: np.ndarray) -> int:
    """64-bit difference hash (brightness steps between neighbours of a 9x8 thumbnail)."""
    grey = cv2.cvtColor(cv2.resize(_u8(rgb), (9, 8), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    bits = (grey[:, 1:] > grey[:, :-1]).reshape(-1)
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def _selected_files(root: str, source: Source) -> list[str]:
    paths = sorted({p for pattern in source.include for p in glob.glob(os.path.join(root, pattern))
                    if os.path.isfile(p) and p.lower().endswith(STILL_EXTENSIONS + VIDEO_EXTENSIONS + EMBEDDED_EXTENSIONS)})
    if source.allow:
        paths = [p for p in paths if any(name in p for name in source.allow)]
    if source.largest_per_folder:
        best: dict[str, str] = {}
        for p in paths:
            folder = os.path.dirname(p)
            if folder.endswith("_dark"):
                continue  # a darker variant of the same picture
            if folder not in best or _pixels(p) > _pixels(best[folder]):
                best[folder] = p
        paths = sorted(best.values())
    return paths


def _frames_of(path: str, source: Source):
    if path.lower().endswith(VIDEO_EXTENSIONS):
        capture = cv2.VideoCapture(path)
        try:
            index = kept = 0
            while kept < source.max_per_video:
                ok, bgr = capture.read()
                if not ok:
                    break
                if index % source.video_step == 0:
                    kept += 1
                    yield index, _float_rgb(bgr)
                index += 1
        finally:
            capture.release()
        return
    if path.lower().endswith(EMBEDDED_EXTENSIONS):
        yield from _embedded_jpegs(path)
        return
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:  # e.g. GIF, which OpenCV may not read: skip, never fail the whole build
        return
    yield 0, _float_rgb(bgr)


def _embedded_jpegs(path: str):
    """Every decodable JPEG stream inside a container file (start/end markers), largest first kept by
    the caller's duplicate check; index = its byte offset order."""
    data = open(path, "rb").read()
    start, index = data.find(b"\xff\xd8\xff"), 0
    while start >= 0:
        end = data.find(b"\xff\xd9", start)
        while end >= 0:
            bgr = cv2.imdecode(np.frombuffer(data[start:end + 2], np.uint8), cv2.IMREAD_COLOR)
            if bgr is not None:
                yield index, _float_rgb(bgr)
                index += 1
                break
            end = data.find(b"\xff\xd9", end + 2)  # an EOI marker inside the stream: look further
        start = data.find(b"\xff\xd8\xff", (end + 2) if end >= 0 else len(data))


def _pixels(path: str) -> int:
    match = re.search(r"(\d+)x(\d+)", os.path.basename(path))
    if match:
        return int(match.group(1)) * int(match.group(2))
    image = cv2.imread(path, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return 0 if image is None else image.size * 64


def _frame_name(rel: str, index: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(rel)[0].replace("/", "__"))[-120:]
    return f"{stem}.{index:04d}.png"


def _copy_licence(root: str, package: str, work: str) -> str:
    """Copy the package's copyright file; return the licence of its ``Files: *`` stanza."""
    src = os.path.join(root, "usr", "share", "doc", package, "copyright")
    if not os.path.isfile(src):
        raise InputError(f"package {package} ships no copyright file; cannot record its licence")
    shutil.copyfile(src, os.path.join(work, "licences", f"{package}.copyright"))
    text = open(src, encoding="utf-8", errors="replace").read()
    for stanza in re.split(r"\n\s*\n", text):
        if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
            match = re.search(r"^License:\s*(.+)$", stanza, re.M)
            if match:
                return match.group(1).strip()
    match = re.search(r"^License:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else f"see licences/{package}.copyright"


def _deb_field(deb: str, field: str) -> str:
    return _run(["dpkg-deb", "-f", deb, field], f"cannot read {os.path.basename(deb)}").strip()


def _run(cmd: list[str], message: str, cwd: str | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as err:
        raise InputError(f"{message}: {err.strerror or err}") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit status %d" % done.returncode])[-1]
        raise InputError(f"{message}: {last}")
    return done.stdout


def _float_rgb(bgr: np.ndarray) -> np.ndarray:
    return bgr[..., ::-1].astype(np.float32) / np.float32(255.0)


def _u8(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _write_png(path: str, rgb: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", _u8(rgb)[..., ::-1])
    if not ok:
        raise OutputError(f"cannot encode {path}")
    with open(path, "wb") as f:
        f.write(data.tobytes())
    return hashlib.sha256(data.tobytes()).hexdigest()


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
