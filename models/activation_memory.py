"""Peak activation memory of the generator, measured by running it rather than modelled.

The engine sizes its batches from this (``engine.batch_size_for_budget``). The generator is built
on PyTorch's ``meta`` device, where tensors have shapes but no data, and one forward pass runs
under a dispatch mode that counts the elements of every tensor an op creates and frees them when
Python drops the tensor. The peak of that count is the live-tensor peak of a real forward, for
any layout the config describes (skips, residual, norms), with no second copy of the network.
"""
from __future__ import annotations

import functools
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nightgrade.models.networks import GeneratorConfig, build_generator


class _LiveElements(TorchDispatchMode):
    """Counts elements of tensors alive now (``live``) and at most (``peak``)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, count: int) -> None:
        self.live -= count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            # views and in-place results share their input's memory: nothing new is allocated
            if isinstance(tensor, torch.Tensor) and id(tensor) not in inputs and not func.is_view:
                count = tensor.numel()
                self.live += count
                self.peak = max(self.peak, self.live)
                weakref.finalize(tensor, self._free, count)
        return out


@functools.lru_cache(maxsize=64)
def peak_live_elements(cfg: GeneratorConfig, side: int) -> int:
    """Largest number of tensor elements alive at once in one forward pass on a ``side`` x ``side``
    tile, the input tile included (it stays referenced throughout)."""
    with torch.device("meta"):
        generator = build_generator(cfg).eval()
        tile = torch.empty(1, cfg.in_channels, side, side)
    counter = _LiveElements()
    with torch.no_grad(), counter:
        generator(tile)
    return counter.peak + tile.numel()
