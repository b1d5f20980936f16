"""Which loaded model a request names (docs/protocol.md, RENDER ``model``): one rule for both ends.

The daemon picks the model it renders with by this rule, and ``enhance --server`` picks the WELCOME
entry it records as the maker of its frames by the same rule, so the two cannot disagree.
"""
from __future__ import annotations

from collections.abc import Sequence

from nightgrade.colorpipeline.errors import ModelError


def choose_model(models: Sequence[tuple[str, str]], wanted: str | None) -> int:
    """Index into ``models`` ((name, weights digest) pairs, the default first) of the model ``wanted``
    names: None or "" is the default, else a name, else a digest that only one model has.
    ModelError naming the choices otherwise."""
    if not models:
        raise ModelError("the daemon lists no loaded models")
    if wanted is None or wanted == "":
        return 0
    for index, (name, _digest) in enumerate(models):
        if wanted == name:
            return index
    by_digest = [index for index, (_name, digest) in enumerate(models) if wanted == digest]
    if len(by_digest) == 1:
        return by_digest[0]
    if by_digest:
        raise ModelError(f"digest {wanted[:19]}... names {len(by_digest)} loaded models (the same weights used "
                         f"differently); name one: {', '.join(models[i][0] for i in by_digest)}")
    raise ModelError(f"no model '{wanted}' is loaded; loaded: {', '.join(name for name, _ in models)}")
