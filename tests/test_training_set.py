"""`sample-data --full`: the real-footage training set builder (issue 14, item 1), on a local .deb."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from nightgrade.colorpipeline.errors import InputError
from nightgrade.server.evaluation.training_set import FullSetConfig, build_full_set, looks_like_photo
from nightgrade.server.evaluation.training_sources import Source

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian tools)")


def _photo(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 16, w // 16, 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img.astype(np.int16) + rng.integers(-12, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _deb(cache, package: str = "ng-test-photos") -> str:
    root = cache.parent / "pkgroot"
    pics = root / "usr/share/pics"
    pics.mkdir(parents=True)
    cv2.imwrite(str(pics / "a.jpg"), _photo(1), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(pics / "b.png"), _photo(2))
    cv2.imwrite(str(pics / "b_copy.png"), _photo(2))        # the same picture again: dropped
    drawing = np.full((240, 320, 3), 200, np.uint8)
    cv2.rectangle(drawing, (40, 40), (200, 160), (20, 90, 200), -1)
    cv2.imwrite(str(pics / "drawing.png"), drawing)         # flat colours: not a photograph
    cv2.imwrite(str(pics / "tiny.png"), _photo(3, 64, 64))   # below the minimum size
    doc = root / f"usr/share/doc/{package}"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                                   "Files: *\nCopyright: 2020 Someone\nLicense: CC-BY-4.0\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(f"Package: {package}\nVersion: 1.2-3\nArchitecture: all\n"
                                         "Maintainer: t <t@example.org>\nDescription: test\n")
    cache.mkdir()
    deb = str(cache / f"{package}_1.2-3_all.deb")
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), deb], check=True, capture_output=True)
    return deb


def test_builds_a_manifested_set_from_a_cached_package(tmp_path) -> None:
    _deb(tmp_path / "cache")
    source = Source("ng-test-photos", ("usr/share/pics/*",))
    out = tmp_path / "full"
    manifest = build_full_set(FullSetConfig(str(out), str(tmp_path / "cache")), (source,), log=lambda m: None)
    names = sorted(f["file"] for f in manifest["frames"])
    assert names == ["usr/share/pics/a.jpg", "usr/share/pics/b.png"]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["count"] == 2 and on_disk["packages"]["ng-test-photos"]["version"] == "1.2-3"
    for frame in on_disk["frames"]:
        assert frame["licence"] == "CC-BY-4.0" and frame["package"] == "ng-test-photos"
        data = (out / frame["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == frame["sha256"]
    assert (out / "licences" / "ng-test-photos.copyright").read_text().startswith("Format:")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".full")]  # no build folder left behind


def test_reserved_packages_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="reserved for independent evaluation"):
        build_full_set(FullSetConfig(str(tmp_path / "o"), str(tmp_path)), (Source("opencv-doc", ("*",)),))


def test_a_missing_package_fails_in_one_line_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no apt-get to fetch with
    with pytest.raises(InputError, match="ng-absent is not in .* apt-get is not available"):
        build_full_set(FullSetConfig(str(tmp_path / "o"), str(tmp_path / "cache")), (Source("ng-absent", ("*",)),))
    assert not (tmp_path / "o").exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".o")]


def test_photo_filter_separates_drawings_from_photographs() -> None:
    assert looks_like_photo(_photo(4).astype(np.float32) / 255)
    flat = np.zeros((200, 300, 3), np.float32)
    flat[50:150, 50:250] = (0.9, 0.2, 0.1)
    assert not looks_like_photo(flat)
