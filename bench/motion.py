"""Motion estimation benchmark (issue 5, item 1): accuracy and speed of dense optical flow.

Known-flow pairs are built from scikit-image sample photos: the moving frame samples the photo
through a smooth invertible map T (rotation, zoom, translation, a sinusoidal local deformation),
so the true flow is T(x) - x. Conditions (motions relative to the frame width w):

* smooth: rotation 2 deg, zoom 3 %, shift (1.5 %, -1 %) w, deformation 0.8 % w, period w/2;
* large_pan: shift (12 %, 5 %) w, rotation 0.5 deg (a 256 px pan is 3.3 % of 8K and 6.7 % of UHD);
* object: the background panned by 1 % w, a square object a quarter of the width wide (another
  photo) moved by (8 %, 3 %) w; background it covers in the moving frame is left out;
* gain: smooth, the moving frame brighter by 15 % plus 0.02 (per-frame enhancement flicker);
* dark_noisy: smooth, both frames at 10 % brightness with Gaussian noise sigma 0.01.

(A) every method at the photos' own size (no reduction, no refinement), one OpenCV thread;
(B) the pipeline with the working resolution reduced to 192 px (1/2.1 to 1/3.9 of the frame, as
    1024 px is of UHD and 8K), wavelet refinement off and on;
(C) one UHD (3840x2160) pair, the smooth condition on an upscaled photo, OpenCV's own threads.

``python bench/motion.py`` (about 15 minutes on 2 shared cores) replaces the "Motion estimation
(issue 5)" section of docs/benchmarks.md; ``--quick`` runs two methods on two photos and prints
the table only.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pywt
import skimage.data

from _common import load_average, markdown_table, run_lines, text_table, write_section
from nightgrade.colorpipeline.temporal.motion import METHODS, FlowConfig, endpoint_error, estimate_flow

HEADING = "## Motion estimation (issue 5)"
PHOTOS = ("astronaut.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
OBJECTS = ("chelsea.png", "horse.png", "astronaut.png", "coffee.png")
CONDITIONS = ("smooth", "large_pan", "object", "gain", "dark_noisy")
REDUCED_SIDE = 192
Pair = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # reference, moving, true flow, valid


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(Path(skimage.data.__file__).parent / name), cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image, dtype=np.float32) / 255.0


def mapped_pair(src: np.ndarray, rot_deg: float = 0.0, zoom: float = 1.0, shift: tuple[float, float] = (0, 0),
                amp: float = 0.0, period: float = 1.0) -> Pair:
    """(src, src seen through T, T(x) - x, where T(x) stays inside the frame)."""
    h, w = src.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    th = np.deg2rad(rot_deg)
    a = zoom * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    inv = np.linalg.inv(a)

    def bump(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (amp * np.sin(2 * np.pi * y / period + 0.3) * np.cos(2 * np.pi * x / (1.7 * period)),
                amp * np.cos(2 * np.pi * x / period + 1.1) * np.sin(2 * np.pi * y / (1.3 * period)))

    bx, by = bump(gx, gy)
    qx = c[0] + a[0, 0] * (gx - c[0]) + a[0, 1] * (gy - c[1]) + shift[0] + bx
    qy = c[1] + a[1, 0] * (gx - c[0]) + a[1, 1] * (gy - c[1]) + shift[1] + by
    px, py = gx.copy(), gy.copy()
    for _ in range(12):  # fixed point for T^-1: the deformation's slope is ~0.1, so this converges fast
        bx, by = bump(px, py)
        rx, ry = gx - c[0] - shift[0] - bx, gy - c[1] - shift[1] - by
        px, py = c[0] + inv[0, 0] * rx + inv[0, 1] * ry, c[1] + inv[1, 0] * rx + inv[1, 1] * ry
    moving = cv2.remap(src, px.astype(np.float32), py.astype(np.float32), cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REFLECT)
    flow = np.stack([qx - gx, qy - gy], axis=-1).astype(np.float32)
    valid = (qx >= 2) & (qx <= w - 3) & (qy >= 2) & (qy <= h - 3)
    return src, np.clip(moving, 0, 1).astype(np.float32), flow, valid


def object_pair(background: np.ndarray, obj_photo: np.ndarray) -> Pair:
    h, w = background.shape[:2]
    side = w // 4
    obj = cv2.resize(obj_photo, (side, side), interpolation=cv2.INTER_AREA)
    ref, moving_bg, flow, inside = mapped_pair(background, shift=(0.01 * w, 0.0))
    y0, x0, mx, my = int(0.35 * h), int(0.3 * w), 0.08 * w, 0.03 * w
    ref = ref.copy()
    ref[y0:y0 + side, x0:x0 + side] = obj
    place = np.float64([[1, 0, x0 + mx], [0, 1, y0 + my]])
    canvas = cv2.warpAffine(obj, place, (w, h), flags=cv2.INTER_CUBIC)
    alpha = cv2.warpAffine(np.ones((side, side), np.float32), place, (w, h))[..., None]
    moving = moving_bg * (1 - alpha) + canvas * alpha
    flow[y0:y0 + side, x0:x0 + side] = (mx, my)
    gx, gy = np.meshgrid(np.arange(w), np.arange(h))
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    inside = (tx >= 2) & (tx <= w - 3) & (ty >= 2) & (ty <= h - 3)
    on_object = np.zeros((h, w), bool)
    on_object[y0:y0 + side, x0:x0 + side] = True
    covered = (tx >= x0 + mx - 1) & (tx <= x0 + mx + side) & (ty >= y0 + my - 1) & (ty <= y0 + my + side)
    return ref, np.clip(moving, 0, 1).astype(np.float32), flow, inside & (on_object | ~covered)


def condition_pair(condition: str, index: int) -> Pair:
    src = photo(PHOTOS[index])
    w = src.shape[1]
    smooth = dict(rot_deg=2.0, zoom=1.03, shift=(0.015 * w, -0.01 * w), amp=0.008 * w, period=0.5 * w)
    if condition == "large_pan":
        return mapped_pair(src, rot_deg=0.5, shift=(0.12 * w, 0.05 * w), amp=0.003 * w, period=0.6 * w)
    if condition == "object":
        return object_pair(src, photo(OBJECTS[index]))
    ref, moving, flow, valid = mapped_pair(src, **smooth)
    if condition == "gain":
        moving = np.clip(moving * 1.15 + 0.02, 0, 1)
    elif condition == "dark_noisy":
        rng = np.random.default_rng(index)
        ref = np.clip(ref * 0.1 + rng.normal(0, 0.01, ref.shape), 0, 1).astype(np.float32)
        moving = np.clip(moving * 0.1 + rng.normal(0, 0.01, moving.shape), 0, 1).astype(np.float32)
    return ref, moving.astype(np.float32), flow, valid


@dataclass(frozen=True)
class Score:
    epe: dict[str, float]  # mean EPE per condition
    cpu: float  # mean CPU seconds per pair

    @property
    def overall(self) -> float:
        return float(np.mean(list(self.epe.values())))


def score(pairs: dict[str, list[Pair]], cfg: FlowConfig) -> Score:
    epe, cpu = {}, []
    for condition, items in pairs.items():
        errors = []
        for ref, moving, truth, valid in items:
            start = time.process_time()
            flow = estimate_flow(ref, moving, cfg)
            cpu.append(time.process_time() - start)
            errors.append(endpoint_error(flow, truth, valid))
        epe[condition] = float(np.mean(errors))
    return Score(epe, float(np.mean(cpu)))


def score_rows(scores: dict[str, Score], conditions: tuple[str, ...]) -> list[list[str]]:
    return [[name, *(f"{s.epe[c]:.2f}" for c in conditions), f"{s.overall:.2f}", f"{s.cpu * 1000:.0f}"]
            for name, s in scores.items()]


def uhd_run(configs: dict[str, FlowConfig]) -> tuple[list[list[str]], float]:
    src = cv2.resize(photo("coffee.png"), (3840, 2560), interpolation=cv2.INTER_CUBIC)[200:2360]
    w = src.shape[1]
    start = time.perf_counter()
    ref, moving, truth, valid = mapped_pair(src, rot_deg=2.0, zoom=1.03, shift=(0.015 * w, -0.01 * w),
                                            amp=0.008 * w, period=0.5 * w)
    build = time.perf_counter() - start
    rows = []
    for name, cfg in configs.items():
        wall, cpu = time.perf_counter(), time.process_time()
        flow = estimate_flow(ref, moving, cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows.append([name, f"{endpoint_error(flow, truth, valid):.2f}", f"{cpu:.2f}", f"{wall:.2f}"])
    return rows, build


def reading(native: dict[str, Score], reduced: dict[str, Score], uhd_rows: list[list[str]],
            default: FlowConfig) -> list[str]:
    """Bullet lines that state what the tables show, computed from them."""
    ranked = sorted(native, key=lambda m: native[m].overall)
    lines = ["- (A) by mean EPE: " + ", ".join(f"{m} {native[m].overall:.2f} px / {native[m].cpu * 1000:.0f} ms"
                                             for m in ranked) + "."]
    for m in ranked[:3]:
        worst = max(CONDITIONS, key=lambda c: native[m].epe[c])
        lines.append(f"- {m}: worst condition {worst} ({native[m].epe[worst]:.2f} px).")
    lines.append(f"- Default method: {default.method} (mean {native[default.method].overall:.2f} px, "
                 f"{native[default.method].cpu * 1000:.0f} ms/pair).")
    for m in ("dis_medium", "dis_fine", "deepflow"):
        off, on = reduced.get(f"{m}, refine off"), reduced.get(f"{m}, refine on")
        if off is None or on is None:
            continue
        per = ", ".join(f"{c} {off.epe[c]:.2f} -> {on.epe[c]:.2f}" for c in CONDITIONS)
        lines.append(f"- (B) wavelet refinement on {m}: mean EPE {off.overall:.2f} -> {on.overall:.2f} px "
                     f"({1 - on.overall / off.overall:.0%} lower; {per}), "
                     f"+{(on.cpu - off.cpu) * 1000:.0f} ms/pair.")
    name, epe, cpu, wall = uhd_rows[0]
    lines.append(f"- (C) {name}: {epe} px EPE, {cpu} s CPU, {wall} s wall per UHD pair.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two methods, two photos, no UHD; print only")
    args = parser.parse_args()
    load_start, started = load_average(), time.perf_counter()
    methods = ("dis_medium", "dis_fine") if args.quick else tuple(METHODS)
    count = 2 if args.quick else len(PHOTOS)
    pairs = {c: [condition_pair(c, i) for i in range(count)] for c in CONDITIONS}

    cv2.setNumThreads(1)
    native = {m: score(pairs, FlowConfig(method=m, max_side=4096, wavelet_refine=False)) for m in methods}
    reduced: dict[str, Score] = {}
    for m in ("dis_medium", "dis_fine", "deepflow") if not args.quick else methods:
        for refine in (False, True):
            cfg = FlowConfig(method=m, max_side=REDUCED_SIDE, wavelet_refine=refine)
            reduced[f"{m}, refine {'on' if refine else 'off'}"] = score(pairs, cfg)
    cv2.setNumThreads(-1)  # OpenCV's default thread count for the UHD timing

    header = ["configuration", *CONDITIONS, "mean", "CPU ms/pair"]
    print(text_table(header, score_rows(native, CONDITIONS)))
    print(text_table(header, score_rows(reduced, CONDITIONS)))
    if args.quick:
        return

    default = FlowConfig()
    uhd_configs = {
        f"default ({default.method}, max_side {default.max_side}, refine to {default.refine_max_side})": default,
        "dis_fine, refine off": FlowConfig(wavelet_refine=False),
        "dis_medium, refine on": FlowConfig(method="dis_medium"),
        "deepflow, refine on": FlowConfig(method="deepflow"),
    }
    uhd_rows, build = uhd_run(uhd_configs)
    print(text_table(["configuration", "EPE px", "CPU s", "wall s"], uhd_rows))

    body = [
        "_Written by `bench/motion.py`; rerunning it replaces this section._",
        "",
        *run_lines(load_start, started, {"OpenCV": cv2.__version__, "PyWavelets": pywt.__version__}),
        f"- Known-flow pairs from scikit-image photos ({', '.join(PHOTOS)}; objects from "
        f"{', '.join(OBJECTS)}), conditions as in the `bench/motion.py` docstring; EPE = mean end-point "
        "error in px over pixels whose match is inside the moving frame and not covered.",
        "- (A) and (B): one OpenCV thread, CPU time per pair; (C): OpenCV's default threads.",
        "",
        "(A) Each method at the photos' own size (400x600 to 512x741), no reduction, no refinement:",
        "",
        markdown_table(header, score_rows(native, CONDITIONS)),
        "",
        f"(B) Working resolution reduced to {REDUCED_SIDE} px, the ratio of 1024 px to UHD/8K, wavelet "
        "refinement (Sec. 3.4) off/on up to the photo's own size:",
        "",
        markdown_table(header, score_rows(reduced, CONDITIONS)),
        "",
        f"(C) One 3840x2160 pair (smooth condition on coffee.png upscaled; motions up to ~160 px; "
        f"building it took {build:.0f} s):",
        "",
        markdown_table(["configuration", "EPE px", "CPU s", "wall s"], uhd_rows),
        "",
        "Reading the numbers:",
        "",
        *reading(native, reduced, uhd_rows, default),
    ]
    write_section(HEADING, "\n".join(body))


if __name__ == "__main__":
    main()
