"""Errors a user can act on, each with the process exit code the CLI returns for it.

Every layer (colorpipeline, models, server) raises these; the CLI prints ``str(err)`` as one
line and exits with ``err.exit_code``. Anything else escaping is a bug (exit code 1).
"""
from __future__ import annotations


class NightGradeError(Exception):
    """Base class: a problem the user can fix. The message must fit on one line."""

    exit_code = 1


class UsageError(NightGradeError):
    """Bad command-line values (frame range syntax, sizes, unknown device...)."""

    exit_code = 2


class InputError(NightGradeError):
    """Missing frame, unreadable or truncated file, size change in a sequence, bad channel layout."""

    exit_code = 3


class OutputError(NightGradeError):
    """The output cannot be written (permissions, missing folder, unsupported format/depth)."""

    exit_code = 4


class ModelError(NightGradeError):
    """A checkpoint that is missing, corrupt, or does not match what the code expects."""

    exit_code = 5


class ColorError(NightGradeError):
    """Unknown colourspace name or an OCIO config that cannot be loaded."""

    exit_code = 6


class ServiceError(NightGradeError):
    """The render daemon is unavailable or refused the work: down, busy, cancelled, past its deadline."""

    exit_code = 7
