"""Paths sent to farm workers: absolute, because a worker's working folder is not the submitter's.

Inputs, outputs, weights and cache folders must then exist at the same absolute paths on every
node (shared storage, or path mapping by the farm scheduler, docs/farm.md).
"""
from __future__ import annotations

import dataclasses
import os

from nightgrade.server.render.pipeline import RenderOptions


def absolute_path(path: str) -> str:
    """``path`` made absolute, keeping a trailing separator (it marks an output folder) and
    leaving URIs (``ocio://studio-config-latest``) as they are."""
    if "://" in path:
        return path
    trailing = path.endswith(("/", os.sep))
    return os.path.abspath(path) + (os.sep if trailing else "")


def absolute_render_paths(opts: RenderOptions) -> RenderOptions:
    """``opts`` with its input, output, weights and OCIO config paths made absolute."""
    return dataclasses.replace(
        opts, input=absolute_path(opts.input), output=absolute_path(opts.output),
        weights=absolute_path(opts.weights) if opts.weights else None,
        ocio_config=absolute_path(opts.ocio_config) if opts.ocio_config else None)
