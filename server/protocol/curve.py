"""CurveZMQ for the daemon socket (docs/protocol.md, Transport): key files, server and client setup.

Keys are zmq.auth certificate files: ``NAME.key`` holds a public key, ``NAME.key_secret`` the pair.
The daemon is the Curve server; it accepts exactly the public keys found in ``*.key`` files of its
authorised-keys folder when it starts (restart it after adding a key). A client whose key is not
authorised fails the handshake and gets no reply at all, so it sees its timeout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from nightgrade.colorpipeline.errors import InputError, UsageError, setting

_LOCAL_TCP_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints only this machine can reach: ipc://, inproc:// and tcp:// on 127.0.0.1,
    localhost or [::1] (not 0.0.0.0, ``*``, an interface name or another address)."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0]
    return scheme == "tcp" and host.lower() in _LOCAL_TCP_HOSTS


def generate_keypair(folder: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write ``folder/name.key`` (public, to share) and ``folder/name.key_secret`` (owner-only);
    never overwrite existing keys. Returns (public_path, secret_path)."""
    folder = Path(folder)
    if not name or os.sep in name or name.startswith("."):
        raise UsageError(f"key name {name!r} must be a plain file name such as 'daemon' or 'workstation-3'")
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise UsageError(f"{path} already exists: keygen never overwrites keys; pick another name or "
                             "move the old pair away first")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # the umask makes zmq.auth create the secret file owner-only: a chmod afterwards would leave
        # a moment in which others could read it
        old_umask = os.umask(0o077)
        try:
            zmq.auth.create_certificates(folder, name)
        finally:
            os.umask(old_umask)
        os.chmod(public, 0o644)  # the public half is meant to be shared
    except OSError as exc:
        raise UsageError(f"cannot write keys in {folder}: {exc.strerror or exc}; choose a writable folder") from None
    return public, secret


def load_keypair(path: str | os.PathLike) -> tuple[bytes, bytes | None]:
    """(public, secret) Z85 keys from a zmq.auth key file; secret is None in a public-only file."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError, IndexError) as exc:
        raise InputError(f"cannot read a Curve key from {path} ({exc}): use files written by "
                         "`nightgrade keygen`") from None
    for key in (public, secret):
        if key is not None and not _is_z85_key(key):
            raise InputError(f"{path} holds a malformed Curve key (need 40 Z85 characters): "
                             "write a new pair with `nightgrade keygen`")
    return public, secret


def _is_z85_key(key: bytes) -> bool:
    try:
        return len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def _load_secret(path: str | os.PathLike) -> tuple[bytes, bytes]:
    public, secret = load_keypair(path)
    if secret is None:
        raise InputError(f"{path} holds only a public key; pass the .key_secret file of the pair")
    return public, secret


@dataclass(frozen=True)
class CurveServerConfig:
    """The daemon's key pair file (``.key_secret``) and the folder of authorised clients' ``.key`` files."""

    secret_key_file: Path
    authorized_keys_dir: Path


@dataclass(frozen=True)
class CurveClientConfig:
    """The daemon's public key file and this client's own pair (``.key_secret``, public part inside)."""

    server_public_key_file: Path
    client_key_file: Path


def check_endpoint(endpoint: str, verb: str = "connect to") -> None:
    """UsageError unless ``endpoint`` is tcp://HOST:PORT (port 0-65535 or ``*``), ipc:// or inproc://."""
    scheme, _, rest = endpoint.partition("://")
    if scheme not in ("tcp", "ipc", "inproc"):
        raise UsageError(f"cannot {verb} {endpoint!r}: use tcp://HOST:PORT or ipc://PATH")
    port = rest.rpartition(":")[2]
    if scheme == "tcp" and port != "*" and not (port.isdigit() and int(port) <= 65535):
        raise UsageError(f"cannot {verb} {endpoint!r}: the port must be a number from 1 to 65535"
                         + (" (0 or * picks a free one)" if verb == "bind" else ""))


def check_bind(endpoint: str, curve: CurveServerConfig | None, insecure: bool) -> None:
    """Refuse a malformed endpoint (ZeroMQ binds a random port for a TCP port it cannot parse,
    such as 99999), and a non-local one without Curve keys unless ``insecure`` was asked for."""
    check_endpoint(endpoint, "bind")
    if curve is None and not insecure and not is_local_endpoint(endpoint):
        raise UsageError(f"refusing to bind {endpoint} without CurveZMQ: pass {setting('curve_secret_key')} and {setting('curve_authorized_keys')} "
                         f"(make keys with `nightgrade keygen`), bind tcp://127.0.0.1, or add {setting('insecure')} "
                         "on a network you trust")


def bind(socket: zmq.Socket, endpoint: str) -> None:
    """``socket.bind(endpoint)``, with ZeroMQ's failures (port in use, no such interface, no
    permission) as one UsageError line that says what to do."""
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as err:
        hint = ("another program (perhaps another daemon) listens there: stop it or pick another port"
                if err.errno == zmq.EADDRINUSE else "check the address and port")
        raise UsageError(f"cannot listen on {endpoint}: {os.strerror(err.errno)}; {hint}") from None


def check_server(cfg: CurveServerConfig) -> tuple[bytes, bytes]:
    """Read and check the daemon's key pair and authorised keys (InputError naming the bad file),
    before any socket exists: an error raised while a socket is open would hang the context's
    termination. Returns the daemon's (public, secret) keys."""
    keys = _load_secret(cfg.secret_key_file)
    folder = Path(cfg.authorized_keys_dir)
    if not folder.is_dir():
        raise InputError(f"authorised keys folder {folder} does not exist: create it and copy the clients' "
                         ".key files there")
    # zmq.auth only logs a bad key file and then authorises nobody: read each one here to say which
    key_files = sorted(folder.glob("*.key"))
    for key_file in key_files:
        load_keypair(key_file)
    if not key_files:
        raise InputError(f"no .key files in {folder}: copy each client's public key (from `nightgrade keygen`) "
                         "there, or no client can connect")
    return keys


def configure_server(context: zmq.Context, socket: zmq.Socket, cfg: CurveServerConfig) -> ThreadAuthenticator:
    """Make ``socket`` (before bind) a Curve server that accepts only the authorised public keys.
    Returns the started authenticator: ``stop()`` it after closing the socket."""
    secret_public, secret = check_server(cfg)
    folder = Path(cfg.authorized_keys_dir)
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(folder))
    socket.curve_secretkey = secret
    socket.curve_publickey = secret_public
    socket.curve_server = True
    return authenticator


def client_keys(cfg: CurveClientConfig) -> tuple[bytes, bytes, bytes]:
    """(server public, client public, client secret), checked: read them before creating a socket."""
    server_public, _ = load_keypair(cfg.server_public_key_file)
    return (server_public, *_load_secret(cfg.client_key_file))
