"""Is anything listening at a daemon endpoint? An instant answer where the operating system has one.

ZeroMQ connects in the background and queues messages for a peer that may come later, so a client
of a daemon that is not running learns it only when every timeout has passed (3 x 10 s by default).
Where the OS can tell at once (a refused TCP connection, a host name that does not resolve, an ipc://
socket file that does not exist), :func:`nothing_listens` says so. A TCP connect that merely takes
long proves nothing (a busy network, a firewall that drops packets): that is left to the timeouts.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

_PROBE_S = 1.0  # longest wait for the TCP handshake; slower answers fall back to the timeouts


def nothing_listens(endpoint: str) -> str | None:
    """Why nothing can be listening at ``endpoint`` (a short clause for a message), else None."""
    if endpoint.startswith("ipc://"):
        path = endpoint[len("ipc://"):]
        return None if os.path.exists(path) or path.startswith("@") else f"the socket file {path} does not exist"
    if not endpoint.startswith("tcp://"):
        return None
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or port is None or host == "*":
        return None
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            return None
    except ConnectionRefusedError:
        return f"nothing listens on port {port} of {host} (connection refused)"
    except socket.gaierror:
        return f"host name {host} does not resolve"
    except OSError:
        return None
