"""Dense motion between two frames for the temporal stage (paper Sec. 3.4).

Sec. 3.4 registers every frame of the sliding window to the current one in two steps: a
multi-scale estimate that removes large displacements, then a wavelet-based registration that
removes the remaining micro misalignment ("coarser level wavelet coefficients to determine large
motion components and then finer level coefficients to refine the motion field"). Here:

1. **Working resolution.** Both frames are reduced (area averaging) until their longer side is at
   most ``FlowConfig.max_side``; a 256 px motion at 8K (7680 px) is 34 px at the default 1024,
   and 68 px for UHD (3840 px).
2. **Dense level.** An OpenCV-contrib method (``FlowConfig.method``) with its own image pyramid
   estimates the flow at working resolution.
3. **Global level.** Phase correlation of the two frames at no more than ``global_side`` px gives
   the dominant translation. When its peak is clear and the shift is at least one coarse pixel,
   the dense method runs a second time on the moving frame shifted back by it (the shift is added
   to that flow afterwards, exact for a constant shift), and each pixel keeps whichever of the two
   flows warps the moving frame closer to the reference (locally averaged error). This coarsest
   level finds pans beyond a dense method's own pyramid (60 px on a 256 px frame: EPE 0.09 px
   with it, 25.6 px without, dis_fine), and the per-pixel choice keeps a moving object right
   when the dominant translation is the object's rather than the background's.
4. **Wavelet level** (``FlowConfig.wavelet_refine``): the flow, brought to at most
   ``refine_max_side``, is refined coarse to fine on the wavelet approximation sub-bands of
   both frames (see :mod:`nightgrade.colorpipeline.temporal.wavelet_refine`).
5. The flow is resized to the input size and its vectors scaled by the same factor.

Flow convention: ``flow[y, x] = (dx, dy)`` maps reference pixel ``(x, y)`` to ``(x + dx, y + dy)``
in the moving frame, so ``warp(moving, flow)`` aligns the moving frame onto the reference.

Method choice (measured by ``bench/motion.py``, 2026-11-26, 2 vCPU AMD EPYC, one OpenCV thread; see
docs/benchmarks.md "Motion estimation (issue 5)"). Mean end-point error in px over 4 photos at their
own size (400x600 to 512x741) per known-flow condition, and CPU ms per pair:

    method         smooth  large_pan  object  gain   dark_noisy  mean   ms/pair
    dis_fine        0.17     0.07      0.80   0.31     1.95      0.66      387
    dis_medium      0.32     0.14      0.98   0.67     1.85      0.79      112
    deepflow        0.10     0.08      2.29   0.17     1.48      0.83     2693
    dis_fast        0.77     0.34      1.30   0.98     1.88      1.05       34
    rlof            0.84     0.35      1.62   1.10     2.53      1.29     1636
    dis_ultrafast   1.14     0.46      1.44   1.20     2.38      1.33       28
    farneback       4.30     1.12      4.74   4.93     3.64      3.75      305
    tvl1            2.53     0.43      2.40  19.36     7.52      6.45    82833

dis_fine has the lowest mean error, so it is the default (accuracy first); deepflow is better on
smooth global motion and dark noise but misses small fast objects (2.29 px) at 7x the time. At a
working resolution reduced as 1024 px reduces UHD/8K, the wavelet level lowers dis_fine's mean
error from 0.92 to 0.73 px (every condition better or equal). On a UHD pair (motions to ~160 px)
the default gives 0.24 px in 2.3 s CPU / 1.5 s wall (0.34 px without the wavelet level; deepflow
with it 0.26 px in 8.5 s CPU).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from nightgrade.colorpipeline.errors import InputError, UsageError
from nightgrade.colorpipeline.luma import REC709_LUMA
from nightgrade.colorpipeline.temporal.wavelet_refine import WaveletRefineConfig, refine_flow

# Percentiles of the pair's joint luminance mapped to 0 and 255 before 8-bit quantisation, so that
# a dark frame uses the whole 8-bit range the OpenCV methods need (most accept only CV_8U).
STRETCH_PERCENTILES = (0.5, 99.5)


def _dis(preset: int, finest_scale: int | None = None, stride: int | None = None
         ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def run(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
        dis = cv2.DISOpticalFlow_create(preset)
        if finest_scale is not None:
            dis.setFinestScale(finest_scale)
        if stride is not None:
            dis.setPatchStride(stride)
        return dis.calc(reference, moving, None)
    return run


def _farneback(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    # Enough levels that the coarsest is ~32 px: the method's own pyramid then spans the frame.
    levels = max(1, int(np.log2(max(reference.shape) / 32)))
    return cv2.calcOpticalFlowFarneback(reference, moving, None, pyr_scale=0.5, levels=levels, winsize=15,
                                        iterations=5, poly_n=7, poly_sigma=1.5, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def _deepflow(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    return cv2.optflow.createOptFlow_DeepFlow().calc(reference, moving, None)


def _rlof(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    # RLOF needs 3-channel 8-bit input; it gets the stretched luminance in all three.
    to3 = cv2.COLOR_GRAY2BGR
    return cv2.optflow.calcOpticalFlowDenseRLOF(cv2.cvtColor(reference, to3), cv2.cvtColor(moving, to3), None)


def _tvl1(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(reference, moving, None)


# Every dense method takes two uint8 H x W luminance images and returns H x W x 2 float32 flow
# from the first to the second.
METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "dis_ultrafast": _dis(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
    "dis_fast": _dis(cv2.DISOPTICAL_FLOW_PRESET_FAST),
    "dis_medium": _dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    # The medium preset stops at half resolution (finest scale 1); this one goes on to full.
    "dis_fine": _dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, finest_scale=0, stride=3),
    "farneback": _farneback,
    "deepflow": _deepflow,
    "rlof": _rlof,
    "tvl1": _tvl1,
}


@dataclass(frozen=True)
class FlowConfig:
    """How :func:`estimate_flow` works (see the module docstring for the steps).

    ``max_side``: longest side of the working resolution of the dense method. ``global_side``:
    longest side for the phase-correlation level; ``global_min_response``: the phase-correlation
    peak below which no global shift is tried (a weak peak means no dominant translation);
    ``fuse_sigma``: Gaussian (working px) over which the two candidate flows' errors are compared.
    ``wavelet_refine``: run the wavelet refinement of Sec. 3.4 up to ``refine_max_side``.
    """

    method: str = "dis_fine"
    max_side: int = 1024
    global_side: int = 256
    global_min_response: float = 0.05
    fuse_sigma: float = 4.0
    wavelet_refine: bool = True
    refine_max_side: int = 2048
    refine: WaveletRefineConfig = field(default_factory=WaveletRefineConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"unknown optical flow method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name in ("max_side", "global_side", "refine_max_side"):
            if getattr(self, name) < 16:
                raise UsageError(f"FlowConfig.{name} is {getattr(self, name)}; it must be at least 16 px")


def luminance(frame: np.ndarray) -> np.ndarray:
    """H x W float32 luminance of an H x W x 3 frame (Rec. 709 weights: motion is estimated on brightness,
    where night footage has its detail); H x W input is returned as float32."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame.astype(np.float32, copy=False)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.transform(frame.astype(np.float32, copy=False), REC709_LUMA[None, :]).reshape(frame.shape[:2])
    raise InputError(f"expected an H x W x 3 frame or H x W luminance for motion estimation, got shape {frame.shape}")


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """``flow`` resampled to ``height x width`` with its vectors scaled by the same factors."""
    if flow.shape[:2] == (height, width):
        return flow.astype(np.float32, copy=True)
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / flow.shape[1]
    out[..., 1] *= height / flow.shape[0]
    return out


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear, reflected border): with ``flow`` from
    :func:`estimate_flow`, this aligns the moving frame onto the reference."""
    height, width = flow.shape[:2]
    if image.shape[:2] != (height, width):
        raise InputError(f"cannot warp a {image.shape[1]}x{image.shape[0]} image with a {width}x{height} flow")
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
    """H x W float32 length of each flow vector, in pixels."""
    return cv2.magnitude(flow[..., 0], flow[..., 1])


def endpoint_error(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean end-point error |flow - truth| in pixels, over ``mask`` where given."""
    err = flow_magnitude((flow - truth).astype(np.float32))
    return float(err[mask].mean() if mask is not None else err.mean())


def occlusion_mask(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """True where the reference pixel has no reliable match in the moving frame.

    Forward-backward consistency (Sundaram, Brox, Keutzer 2010, "Dense point trajectories by
    GPU-accelerated large displacement optical flow", eq. 5): with ``w_f`` the forward flow
    (reference -> moving) and ``w_b`` the backward flow (moving -> reference) sampled at
    ``x + w_f(x)``, a pixel is consistent when
    ``|w_f + w_b|^2 < alpha (|w_f|^2 + |w_b|^2) + beta``; ``alpha`` = 0.01 and ``beta`` = 0.5 px^2
    are the paper's values (``beta`` is in squared pixels of the flows given: for flows estimated
    at a reduced working resolution and resized up by a factor s, pass ``beta * s**2`` or test the
    flows at working resolution). Pixels whose forward vector leaves the frame are flagged too:
    they disappear from view.
    """
    if flow_fw.shape != flow_bw.shape or flow_fw.ndim != 3 or flow_fw.shape[2] != 2:
        raise InputError(f"forward and backward flows must both be H x W x 2, got {flow_fw.shape} and {flow_bw.shape}")
    height, width = flow_fw.shape[:2]
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    tx, ty = gx + flow_fw[..., 0], gy + flow_fw[..., 1]
    bw = cv2.remap(flow_bw, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fw_sq = flow_fw[..., 0] ** 2 + flow_fw[..., 1] ** 2
    bw_sq = bw[..., 0] ** 2 + bw[..., 1] ** 2
    loop_sq = (flow_fw[..., 0] + bw[..., 0]) ** 2 + (flow_fw[..., 1] + bw[..., 1]) ** 2
    outside = (tx < 0) | (tx > width - 1) | (ty < 0) | (ty > height - 1)
    return (loop_sq >= alpha * (fw_sq + bw_sq) + beta) | outside


def estimate_flow(reference: np.ndarray, moving: np.ndarray, cfg: FlowConfig = FlowConfig()) -> np.ndarray:
    """H x W x 2 float32 flow mapping each reference pixel to its position in ``moving``.

    Frames are float32 H x W x 3 in [0, 1] or their H x W luminance, of equal size. Steps are in
    the module docstring (Sec. 3.4: large displacements first, then micro misalignment).
    """
    reference, moving = np.asarray(reference), np.asarray(moving)
    if reference.shape != moving.shape:
        raise InputError(f"reference frame is {reference.shape} but moving frame is {moving.shape}: "
                         "frames compared for motion must have the same size and channels")
    height, width = reference.shape[:2]
    ref_w, mov_w = _stretch_pair(_reduce(reference, cfg.max_side), _reduce(moving, cfg.max_side))
    ref_u8 = _to_u8(ref_w)
    flow = METHODS[cfg.method](ref_u8, _to_u8(mov_w))
    shift = _global_shift(ref_w, mov_w, cfg)
    if shift is not None:
        shifted = METHODS[cfg.method](ref_u8, _to_u8(_shift_image(mov_w, shift)))
        shifted += np.asarray(shift, dtype=np.float32)
        flow = _fuse(ref_w, mov_w, flow, shifted, cfg.fuse_sigma)
    if cfg.wavelet_refine:
        ref_r, mov_r = _stretch_pair(_reduce(reference, cfg.refine_max_side), _reduce(moving, cfg.refine_max_side))
        flow = refine_flow(ref_r, mov_r, resize_flow(flow, *ref_r.shape), cfg.refine)
    return resize_flow(flow, height, width)


def _reduce(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Luminance at most ``max_side`` px on its longer side (area averaging: no aliasing)."""
    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame.astype(np.float32, copy=False), size, interpolation=cv2.INTER_AREA)
    return luminance(frame)


def _stretch_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images mapped by one affine map taking their joint 0.5/99.5 percentiles to 0 and 1:
    one map for both keeps brightness constancy, which every method assumes."""
    step = max(1, int(np.sqrt(a.size / 65536)))  # percentiles of ~2 x 65k samples are plenty
    lo, hi = np.percentile(np.concatenate([a[::step, ::step].ravel(), b[::step, ::step].ravel()]),
                           STRETCH_PERCENTILES)
    lo, gain = np.float32(lo), np.float32(1.0 / max(float(hi - lo), 1e-6))
    return (a - lo) * gain, (b - lo) * gain


def _to_u8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _global_shift(reference: np.ndarray, moving: np.ndarray, cfg: FlowConfig) -> tuple[float, float] | None:
    """The dominant translation (dx, dy) at the resolution given, or None when there is none clear."""
    height, width = reference.shape
    scale = min(1.0, cfg.global_side / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small_ref = cv2.resize(reference, size, interpolation=cv2.INTER_AREA)
    small_mov = cv2.resize(moving, size, interpolation=cv2.INTER_AREA)
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(small_ref, small_mov, window)
    if response < cfg.global_min_response or np.hypot(dx, dy) < 1.0:
        # A shift under one coarse pixel is within every dense method's reach.
        return None
    return dx * width / size[0], dy * height / size[1]


def _fuse(reference: np.ndarray, moving: np.ndarray, a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """Per pixel, whichever of flows ``a`` and ``b`` warps ``moving`` closer to ``reference``
    (absolute difference averaged over a Gaussian of ``sigma`` px)."""
    def cost(flow: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(np.abs(warp(moving, flow) - reference), (0, 0), sigma)
    return np.where((cost(b) < cost(a))[..., None], b, a)


def _shift_image(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """``image`` sampled at ``x + shift`` (reflected border)."""
    matrix = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)
