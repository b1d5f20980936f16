"""Rec.709 luma weights: the one definition for every module that weighs R, G and B by brightness
(the camera model, exposure, controls, motion, baselines)."""
from __future__ import annotations

import numpy as np

#: Relative luminance of linear Rec.709 / sRGB primaries (ITU-R BT.709-6, item 3.2); read-only.
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
REC709_LUMA.setflags(write=False)
