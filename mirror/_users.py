"""The users file of ``[serve] users-file``: who may upload (and read, with ``read-auth``).

TOML, one line per user under ``[users]``, each a salted scrypt hash (stdlib ``hashlib.scrypt``,
N=2**14, r=8, p=1: about 16 MiB and tens of milliseconds per check, the parameters the
``cryptography`` docs and RFC 7914 give for interactive logins)::

    [users]
    alice = "scrypt:16384:8:1:<salt, hex>:<key, hex>"

``mirror user add`` writes it atomically (temp file, fsync, rename) with mode 0600. The server
re-reads it when it changes, and remembers credentials it has already checked (a keyed digest,
never the password), so a client reading with ``read-auth`` does not pay for scrypt per request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tomllib
from pathlib import Path

import tomli_w

from mirror.errors import ConfigError, EnvironmentFault

_N, _R, _P, _KEY, _SALT = 2**14, 8, 1, 32, 16
_MAXMEM = 64 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_PASSWORD = 1024
_MAX_FILE = 1024 * 1024


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"refusing user name {name[:80]!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(_SALT) if salt is None else salt
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_KEY, maxmem=_MAXMEM)
    return f"scrypt:{_N}:{_R}:{_P}:{salt.hex()}:{key.hex()}"


def check_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a malformed entry (never an exception)."""
    try:
        kind, n, r, p, salt, key = stored.split(":")
        n_, r_, p_ = int(n), int(r), int(p)
        if kind != "scrypt" or n_ > 2**20 or r_ > 32 or p_ > 16 or len(password) > _MAX_PASSWORD:
            return False
        expected = bytes.fromhex(key)
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=n_, r=r_, p=p_, dklen=len(expected), maxmem=_MAXMEM
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


def load(path: Path) -> dict[str, str]:
    """The users and their hashes; a missing file has none."""
    try:
        if path.stat().st_size > _MAX_FILE:
            raise ConfigError(f"users file {path} is larger than {_MAX_FILE} bytes")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"users file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise EnvironmentFault(f"cannot read users file {path}: {exc.strerror}") from None
    users = data.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise ConfigError(f"users file {path}: [users] must map names to hash strings")
    return dict(users)


def add_user(path: Path, name: str, password: str) -> bool:
    """Set ``name``'s password; True when the user is new. Written atomically, mode 0600."""
    check_name(name)
    if not password:
        raise ConfigError("refusing an empty password")
    if len(password) > _MAX_PASSWORD:
        raise ConfigError(f"refusing a password longer than {_MAX_PASSWORD} characters")
    users = load(path)
    new = name not in users
    users[name] = hash_password(password)
    body = "# mirror users: written by `mirror user add NAME`; salted scrypt hashes\n" + tomli_w.dumps({"users": users})
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise EnvironmentFault(f"cannot write users file {path}: {exc.strerror}") from None
    return new


class Users:
    """The users file as the server sees it: re-read when it changes; checked credentials remembered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        self._key = secrets.token_bytes(32)
        self._known: set[bytes] = set()

    def _refresh(self) -> None:
        try:
            info = self.path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._users = load(self.path) if stamp is not None else {}
            self._stamp = stamp
            self._known.clear()

    def remembered(self, authorization: str | None) -> str | None:
        """The user, if these very credentials were checked before (no scrypt: fit for the event loop)."""
        return self._check(authorization, compute=False)

    def authenticate(self, authorization: str | None) -> str | None:
        """The user an ``Authorization: Basic`` header proves, or None (missing, malformed or wrong).

        Costs one scrypt for credentials not seen before: call it off the event loop.
        """
        return self._check(authorization, compute=True)

    def _check(self, authorization: str | None, *, compute: bool) -> str | None:
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic" or len(value) > 4 * _MAX_PASSWORD:
            return None
        try:
            name, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not sep:
            return None
        self._refresh()
        stored = self._users.get(name)
        if stored is None:
            return None
        token = hmac.digest(self._key, f"{name}\0{password}\0{stored}".encode(), "sha256")
        if token in self._known:
            return name
        if not compute or not check_password(stored, password):
            return None
        self._known.add(token)
        return name
