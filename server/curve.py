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

from nightgrade.colorpipeline.errors import InputError, UsageError

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
        zmq.auth.create_certificates(folder, name)
        os.chmod(secret, 0o600)
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


def check_bind(endpoint: str, curve: CurveServerConfig | None, insecure: bool) -> None:
    """Refuse to bind a non-local endpoint without Curve keys unless ``insecure`` was asked for."""
    if endpoint.partition("://")[0] not in ("tcp", "ipc", "inproc"):
        raise UsageError(f"cannot bind {endpoint!r}: use tcp://HOST:PORT or ipc://PATH")
    if curve is None and not insecure and not is_local_endpoint(endpoint):
        raise UsageError(f"refusing to bind {endpoint} without CurveZMQ: pass --curve-secret-key and --curve-authorized-keys "
                         "(make keys with `nightgrade keygen`), bind tcp://127.0.0.1, or add --insecure "
                         "on a network you trust")


def configure_server(context: zmq.Context, socket: zmq.Socket, cfg: CurveServerConfig) -> ThreadAuthenticator:
    """Make ``socket`` (before bind) a Curve server that accepts only the authorised public keys.
    Returns the started authenticator: ``stop()`` it after closing the socket."""
    secret_public, secret = _load_secret(cfg.secret_key_file)
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
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(folder))
    socket.curve_secretkey = secret
    socket.curve_publickey = secret_public
    socket.curve_server = True
    return authenticator


def configure_client(socket: zmq.Socket, cfg: CurveClientConfig) -> None:
    """Make ``socket`` (before connect) a Curve client of the daemon with the given public key."""
    server_public, _ = load_keypair(cfg.server_public_key_file)
    public, secret = _load_secret(cfg.client_key_file)
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret
