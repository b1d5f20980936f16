"""`nightgrade sample-data`: its options and glue (the work: evaluation/sample_data.py, training_set.py)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from nightgrade.server.evaluation.sample_data import SampleDataConfig, build_sample_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `nightgrade sample-data`; pair with ``run``."""
    d = SampleDataConfig()
    parser.add_argument("dir", help="folder to create (train/, eval/, manifest.json)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"noise seed (default {d.seed})")
    parser.add_argument("--stops", type=float, default=d.camera.stops,
                        help=f"exposure drop of the low-light domain in stops (default {d.camera.stops})")
    parser.add_argument("--train-low-frames", type=int, default=d.train_low_count,
                        help=f"low-light training frames (default {d.train_low_count})")
    parser.add_argument("--train-normal-frames", type=int, default=d.train_normal_count,
                        help=f"normal-domain video frames, photos come on top (default {d.train_normal_count})")
    parser.add_argument("--eval-frames", type=int, default=d.eval_frames,
                        help=f"consecutive frames per evaluation clip (default {d.eval_frames})")
    parser.add_argument("--force", action="store_true", help="replace DIR if it is not empty")
    parser.add_argument("--full", action="store_true",
                        help="build the full training set of real footage from Debian packages instead (a "
                             "preparation step that downloads them with apt-get; see docs/model-card.md)")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "nightgrade", "debs"),
                        help="with --full: folder keeping the downloaded .deb files (default ~/.cache/nightgrade/debs)")


def run(args: argparse.Namespace) -> int:
    """Build from parsed ``add_arguments`` options and print a one-line summary."""
    if args.full:
        from nightgrade.server.evaluation.training_set import FullSetConfig, build_full_set

        start = time.perf_counter()
        manifest = build_full_set(FullSetConfig(out_dir=args.dir, cache_dir=args.cache), overwrite=args.force,
                                  log=lambda m: print(m, file=sys.stderr))
        print(f"wrote {manifest['count']} clean frames from {len(manifest['packages'])} packages to "
              f"{os.path.abspath(args.dir)} in {time.perf_counter() - start:.1f} s; sources and licences in "
              "manifest.json and licences/")
        return 0
    defaults = SampleDataConfig()
    cfg = SampleDataConfig(seed=args.seed, camera=dataclasses.replace(defaults.camera, stops=args.stops),
                           train_low_count=args.train_low_frames, train_normal_count=args.train_normal_frames,
                           eval_frames=args.eval_frames)
    start = time.perf_counter()
    manifest = build_sample_data(args.dir, cfg, overwrite=args.force)
    totals = manifest["totals"]
    print(f"wrote {totals['png_files']} PNG files ({totals['png_bytes'] / 1e6:.1f} MB) to {os.path.abspath(args.dir)} "
          f"in {time.perf_counter() - start:.1f} s; licences and sources in manifest.json")
    return 0
