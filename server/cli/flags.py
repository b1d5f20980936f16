"""The command line's names for the settings that lower layers name in their errors.

Lower layers raise errors in domain terms (``colorpipeline.errors.setting``: a config field); the
CLI shows each as the flag a user types. A field is its flag with dashes (``max_motion`` ->
``--max-motion``) unless listed here.
"""
from __future__ import annotations

_EXCEPTIONS = {
    "low_dir": "--low",
    "clean_dir": "--clean",
}


def flag(field: str) -> str:
    """The flag that sets ``field``."""
    return _EXCEPTIONS.get(field, "--" + field.replace("_", "-"))
