"""What made an output frame: a record in the frame's own header, so that a resumed render keeps
only frames made exactly as it would make them.

A complete-looking file is not enough (``farm_resume`` checks size, channels and decoding): a
rerun with another ``--mix`` or other weights kept every old frame and said nothing, and a hard
link to the input passed every file test. So each frame NightGrade writes carries its
``settings`` - the model's picture identity (``checkpoint.picture_identity``: weights and how
they are used; through a daemon, the identity WELCOME gives for the model used), source file,
colourspaces and OCIO config, mix, proxy scale, tile sizes, bit depth and compression, the
temporal window - as compact JSON in its header, written with the pixels in one atomic write:

- EXR and PNG: the ``nightgrade:render`` attribute;
- TIFF: ``ImageDescription`` (TIFF keeps no custom attributes);
- DPX: ``ImageDescription`` holds only a fingerprint of the settings (DPX keeps 32 characters),
  so a mismatch is detected but not itemised.

A frame without a record, or with different settings, is rendered again and the render says why
(``frames_rerendered`` and the first reason in its summary).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import OpenImageIO as oiio

from nightgrade.colorpipeline.io.frame import Frame

_ATTRIBUTE = {".exr": "nightgrade:render", ".png": "nightgrade:render", ".tif": "ImageDescription",
              ".tiff": "ImageDescription", ".dpx": "ImageDescription"}
_FINGERPRINT_ONLY = frozenset({".dpx"})
_FINGERPRINT = "nightgrade1:"


def normalised(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists), so records compare equal."""
    return json.loads(_text(settings))


def with_record(frame: Frame, path: str, settings: Mapping[str, Any]) -> Frame:
    """``frame`` with the record of ``settings`` in its header, in the place ``path``'s format keeps it."""
    ext = os.path.splitext(path)[1].lower()
    header = oiio.ImageSpec(frame.header)
    header.attribute(_ATTRIBUTE.get(ext, "nightgrade:render"),
                     _fingerprint(settings) if ext in _FINGERPRINT_ONLY else _text(settings))
    return dataclasses.replace(frame, header=header)


def mismatch(path: str, settings: Mapping[str, Any]) -> str | None:
    """None when the frame at ``path`` records exactly ``settings``; else why not, in a few words
    (``mix 1.0 -> 0.3``)."""
    ext = os.path.splitext(path)[1].lower()
    image = oiio.ImageInput.open(path)
    if image is None:
        oiio.geterror()
        return "its header cannot be read"
    try:
        recorded = image.spec().get_string_attribute(_ATTRIBUTE.get(ext, "nightgrade:render"), "")
    finally:
        image.close()
    if ext in _FINGERPRINT_ONLY:
        if not recorded.startswith(_FINGERPRINT):
            return "no record of what made it"
        return None if recorded == _fingerprint(settings) else "made with other settings"
    try:
        made = json.loads(recorded)
    except ValueError:
        made = None
    if not isinstance(made, dict):
        return "no record of what made it"
    wanted = normalised(settings)
    for key in sorted(set(made) | set(wanted)):
        if made.get(key) != wanted.get(key):
            return f"{key} {json.dumps(made.get(key))} -> {json.dumps(wanted.get(key))}"
    return None


def _text(settings: Mapping[str, Any]) -> str:
    return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))


def _fingerprint(settings: Mapping[str, Any]) -> str:
    return _FINGERPRINT + hashlib.blake2b(_text(settings).encode(), digest_size=9).hexdigest()
