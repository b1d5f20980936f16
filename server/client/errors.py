"""What the daemon's ERROR replies become on the client side: one exception class per exit-code
family (docs/protocol.md, ERROR codes; README, exit codes)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nightgrade.colorpipeline.errors import (ColorError, InputError, ModelError, NightGradeError, ServiceError,
                                             UsageError)
from nightgrade.server import protocol as P


class DaemonError(NightGradeError):
    """An ERROR reply (or a reply this client cannot use): ``code``, ``message`` and ``extra`` as
    sent. Instances come from :func:`daemon_error`, whose subclasses pick the exit code family."""

    def __init__(self, code: str, message: str, extra: Mapping[str, Any] | None = None) -> None:
        self.code, self.message, self.extra = code, message, dict(extra or {})
        super().__init__(f"daemon: {code}: {message}")


class DaemonInputError(DaemonError, InputError):
    """The request's pixels or size (BAD_BUFFER, TOO_LARGE, NEED_FRAMES)."""


class DaemonServiceError(DaemonError, ServiceError):
    """The daemon refused or dropped the work: BUSY (queue full), CANCELLED, DEADLINE."""


class DaemonModelError(DaemonError, ModelError):
    """UNKNOWN_MODEL."""


class DaemonColorError(DaemonError, ColorError):
    """BAD_COLORSPACE."""


class DaemonUsageError(DaemonError, UsageError):
    """BAD_VERSION: the two ends speak no common protocol version."""


class DaemonUnavailable(ServiceError):
    """No reply within the timeout after every retry (down, wrong address, or Curve key refused)."""


_FAMILY = {P.BAD_BUFFER: DaemonInputError, P.TOO_LARGE: DaemonInputError, P.NEED_FRAMES: DaemonInputError,
           P.BUSY: DaemonServiceError, P.CANCELLED_CODE: DaemonServiceError, P.DEADLINE: DaemonServiceError,
           P.UNKNOWN_MODEL: DaemonModelError, P.BAD_COLORSPACE: DaemonColorError, P.BAD_VERSION: DaemonUsageError}


def daemon_error(code: str, message: str, extra: Mapping[str, Any] | None = None) -> DaemonError:
    """The DaemonError subclass for ``code``; BAD_MESSAGE and INTERNAL stay plain (a bug, exit 1)."""
    return _FAMILY.get(code, DaemonError)(code, message, extra)
