"""(b) of bench/tiles.py: the tile engine on each inference backend against MONAI's
``sliding_window_inference`` on the same frame, tile size, batch and network (issue 17).

MONAI gets the same generator. It cannot build our region tiles, so its predictor feeds each
window's local RGB in both the local and the region channels: the network's cost per tile is the
same on both sides, and the comparison is of tile plans, merging and backends. MONAI runs eager
PyTorch (its own default); ours runs eager, ``torch.compile``, ONNX Runtime and OpenVINO (those
installed), all timed interleaved in one run so that load bursts fall on every side.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch

from _common import Timing, cpu_ratio, time_interleaved, time_once, verdict, wall_ratio
from nightgrade.colorpipeline.tiling.plan import TileConfig, plan_tiles
from nightgrade.models.backends import backend_available, resolve_backend
from nightgrade.models.engine import Engine, EngineConfig
from nightgrade.models.networks import Generator

GOAL_EAGER = 1.2  # MONAI eager time / our eager time
GOAL_DEFAULT = 1.5  # MONAI eager time / our time on the default backend
ORDER = ("torch", "compile", "onnxruntime", "openvino")


@dataclass(frozen=True)
class MonaiResult:
    batch: int
    our_tiles: int
    monai_tiles: int
    monai: Timing
    ours: dict[str, Timing]  # backend -> steady state ("torch" is eager)
    first_use: dict[str, float]  # backend -> wall seconds to set up and run one Nl x Nl frame
    max_diff: dict[str, float]  # backend -> max |output - eager output|
    default: str  # what "auto" picks on this machine

    def spreads(self) -> list[Timing]:
        return [self.monai, *self.ours.values()]


def bench_monai(generator: Generator, tiles: TileConfig, frame: np.ndarray, batch: int | None, repeats: int,
                backends: tuple[str, ...] = ORDER) -> MonaiResult:
    from monai.data.utils import dense_patch_slices
    from monai.inferers import sliding_window_inference

    spec = TileConfig(local=tiles.local, region=tiles.region, stride=tiles.step)
    engines = {"torch": Engine(generator, spec, EngineConfig(device="cpu", batch_size=batch))}
    batch = engines["torch"].batch_size_for(tiles.local)
    plan = plan_tiles(*frame.shape[:2], tiles)
    interval = int(tiles.local * 0.5)  # MONAI's scan interval for overlap 0.5
    monai_tiles = len(dense_patch_slices(frame.shape[:2], (tiles.local, tiles.local), (interval, interval)))
    cin = generator.config.in_channels
    warm = np.ascontiguousarray(frame[:tiles.local, :tiles.local])
    first_use: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nightgrade-bench-cache-") as cache:
        # Empty caches: the compile or export a first run pays, not a rerun's cache hit.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        os.environ["XDG_CACHE_HOME"] = cache
        for name in backends[1:]:
            if name != "compile" and not backend_available(name):
                print(f"    {name}: not installed, skipped", flush=True)
                continue

            def build(name: str = name) -> None:
                engines[name] = Engine(generator, spec, EngineConfig(device="cpu", batch_size=batch, backend=name))
                engines[name].enhance(warm, tiles)

            # Wall time: inductor compiles partly in worker processes, outside this process's CPU time.
            first_use[name] = time_once(build).best
        engines["torch"].enhance(warm, tiles)  # thread pools and oneDNN primitives outside the timing

        counted = [0]

        def predictor(x: torch.Tensor) -> torch.Tensor:
            counted[0] += x.shape[0]
            return generator(x if cin == 3 else torch.cat([x] * (cin // 3), dim=1))

        image = torch.from_numpy(frame).permute(2, 0, 1)[None].contiguous()
        outputs: dict[str, np.ndarray] = {}

        def run_monai() -> None:
            # Mapped to and from [-1, 1] and returned as H x W x 3, as Engine.enhance does.
            with torch.inference_mode():
                y = sliding_window_inference(image * 2.0 - 1.0, roi_size=tiles.local, sw_batch_size=batch,
                                             predictor=predictor, overlap=0.5, mode="gaussian", sigma_scale=1 / 6)
                outputs["monai"] = y[:, :3].add_(1.0).mul_(0.5).clamp_(0.0, 1.0)[0].permute(1, 2, 0).numpy()

        def ours(name: str):  # noqa: ANN202
            return lambda: outputs.__setitem__(name, engines[name].enhance(frame, tiles))

        names = list(engines)
        timings = time_interleaved([run_monai, *(ours(n) for n in names)], repeats)
        for key in ("TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME"):
            del os.environ[key]
    if counted[0] != monai_tiles * repeats:
        raise RuntimeError(f"MONAI ran {counted[0] / repeats} windows a frame, {monai_tiles} were planned")
    diff = {n: float(np.abs(outputs[n] - outputs["torch"]).max()) for n in names[1:]}
    return MonaiResult(batch, plan.count, monai_tiles, timings[0], dict(zip(names, timings[1:])), first_use, diff,
                       resolve_backend("auto", torch.device("cpu")))


def _label(name: str) -> str:
    return "eager" if name == "torch" else name


def rows(b: MonaiResult) -> list[list[str]]:
    out = [["(b) tiles run: ours / MONAI", f"{b.our_tiles} / {b.monai_tiles}", "", ""],
           ["(b) MONAI sliding_window_inference, eager", b.monai.describe(), "", ""]]
    for name, timing in b.ours.items():
        out.append([f"(b) ours, {_label(name)}", timing.describe(), "", ""])
        if name in b.first_use:
            out.append([f"(b) {_label(name)}: set-up + first {name != 'compile' and 'export, ' or ''}"
                        "one-tile frame (wall)", f"{b.first_use[name]:.1f} s", "", ""])
            out.append([f"(b) {_label(name)}: max abs(output - eager output)", f"{b.max_diff[name]:.1e}",
                        "<= 1e-3", "yes" if b.max_diff[name] <= 1e-3 else "no"])
    eager = cpu_ratio(b.monai, b.ours["torch"])
    out.append(["(b) MONAI eager / ours eager", f"{eager:.3f}x (wall {wall_ratio(b.monai, b.ours['torch']):.3f}x)",
                f">= {GOAL_EAGER}x", verdict(eager, GOAL_EAGER)])
    for name in list(b.ours)[1:]:
        value = cpu_ratio(b.monai, b.ours[name])
        default = name == b.default
        out.append([f"(b) MONAI eager / ours, {name}{' (the default here)' if default else ''}",
                    f"{value:.3f}x (wall {wall_ratio(b.monai, b.ours[name]):.3f}x)",
                    f">= {GOAL_DEFAULT}x" if default else "", verdict(value, GOAL_DEFAULT) if default else ""])
    return out


def findings(b: MonaiResult) -> list[str]:
    eager = b.ours["torch"]
    per_tile = (eager.cpu_best / b.our_tiles) / (b.monai.cpu_best / b.monai_tiles)
    out = [f"- (b) The in-frame plan runs {b.our_tiles} tiles where MONAI runs {b.monai_tiles}. Per tile our eager "
           f"engine costs {per_tile:.2f}x MONAI's CPU time, so MONAI / ours eager is {cpu_ratio(b.monai, eager):.2f}x."]
    for name in list(b.ours)[1:]:
        out.append(f"- {name}: eager / {name} = {cpu_ratio(eager, b.ours[name]):.2f}x in CPU time "
                   f"({wall_ratio(eager, b.ours[name]):.2f}x in wall time), {cpu_ratio(b.monai, b.ours[name]):.2f}x "
                   f"MONAI eager, after {b.first_use[name]:.0f} s of set-up on first use; outputs within "
                   f"{b.max_diff[name]:.1e} of eager.")
    fastest = min(b.ours, key=lambda n: b.ours[n].cpu_best)
    out.append(f"- Fastest here: {fastest}. `--backend auto` (the default of `enhance` and `serve`) picks "
               f"{b.default} on this machine.")
    return out


def describe(b: MonaiResult, tiles: TileConfig) -> str:
    nl = tiles.local
    return (f"- (b) The same frame, geometry and generator on both sides (MONAI's predictor gets each window's "
            f"local RGB in the region channels too: same network cost per tile). MONAI "
            f"`sliding_window_inference(roi_size={nl}, sw_batch_size={b.batch}, overlap=0.5, mode=\"gaussian\", "
            "sigma_scale=1/6)` under `torch.inference_mode`; both map [0,1] to [-1,1] and back and return "
            f"H x W x 3. Backends set up (compiled or exported into an empty cache) and run on one {nl}x{nl} "
            "frame before the interleaved timing.")
