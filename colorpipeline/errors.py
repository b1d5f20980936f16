"""Errors a user can act on, each with the process exit code the CLI returns for it.

Every layer (colorpipeline, models, server) raises these; the CLI prints one line and exits with
``err.exit_code``. Anything else escaping is a bug (exit code 1).

Lower layers speak in domain terms: a setting the user can change is named by its config field,
marked with :func:`setting`, and each front end shows it its own way through
:meth:`NightGradeError.naming` (the CLI as its flag, ``server/cli/flags.py``; the daemon as its
protocol field). ``str(err)`` shows the plain field names.
"""
from __future__ import annotations

import re
from collections.abc import Callable

_MARK = re.compile("\u27e8([A-Za-z_][\\w.]*)\u27e9")


def setting(name: str) -> str:
    """``name`` (a config field) marked in an error message, for each front end to show its own way."""
    return f"\u27e8{name}\u27e9"


class NightGradeError(Exception):
    """Base class: a problem the user can fix. The message must fit on one line."""

    exit_code = 1

    def naming(self, name_of: Callable[[str], str]) -> str:
        """The message with each marked setting shown as ``name_of(field)`` (a flag, a protocol field)."""
        return _MARK.sub(lambda m: name_of(m.group(1)), super().__str__())

    def __str__(self) -> str:
        return self.naming(lambda name: name)


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
