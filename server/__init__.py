"""nightgrade.server: the command line, rendering, the daemon, its protocol and client, farm and
evaluation (docs/architecture.md)."""
from __future__ import annotations


def package_version() -> str:
    """The installed nightgrade version; the one source for --version, WELCOME and the client's name."""
    from importlib import metadata

    try:
        return metadata.version("nightgrade")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"
