"""The users file: salted scrypt hashes, written atomically with mode 0600, and basic-auth checks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mirror._users import Users, add_user, check_name, check_password, hash_password, load
from mirror.errors import ConfigError

# scrypt costs tens of milliseconds a hash by design: these are over the fast loop's budget.
pytestmark = pytest.mark.slow


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_hashes_are_salted_and_checked() -> None:
    one, two = hash_password("secret"), hash_password("secret")
    assert one != two and one.startswith("scrypt:16384:8:1:")
    assert check_password(one, "secret") and check_password(two, "secret")
    assert not check_password(one, "Secret")
    for broken in ("", "scrypt:1:2", "md5:16384:8:1:00:00", "scrypt:x:8:1:00:00", "scrypt:16384:8:1:zz:00"):
        assert not check_password(broken, "secret")
    assert not check_password("scrypt:1073741824:8:1:00:00", "secret")  # a cost that would eat the machine


def test_add_user_writes_the_file_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    assert add_user(path, "alice", "pw1")
    assert not add_user(path, "alice", "pw2")
    assert add_user(path, "bob", "pw3")
    assert path.stat().st_mode & 0o777 == 0o600
    users = load(path)
    assert set(users) == {"alice", "bob"}
    assert check_password(users["alice"], "pw2") and not check_password(users["alice"], "pw1")
    assert [p.name for p in tmp_path.iterdir()] == ["users.toml"]  # no temp file left
    with pytest.raises(ConfigError, match="empty password"):
        add_user(path, "carol", "")
    for bad in ("", "../x", "a b", "x" * 65, "-dash"):
        with pytest.raises(ConfigError, match="refusing user name"):
            check_name(bad)
    path.write_text("[users\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path)
    path.write_text("[users]\nalice = 3\n")
    with pytest.raises(ConfigError, match="hash strings"):
        load(path)


def test_basic_auth_against_the_file_follows_its_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    users = Users(path)
    assert users.authenticate(_basic("alice", "pw")) is None  # no file yet: nobody
    add_user(path, "alice", "pw")
    assert users.remembered(_basic("alice", "pw")) is None  # never checked: no answer without scrypt
    assert users.authenticate(_basic("alice", "pw")) == "alice"
    assert users.remembered(_basic("alice", "pw")) == "alice"
    assert users.remembered(_basic("alice", "nope")) is None
    assert users.authenticate(_basic("alice", "pw")) == "alice"  # remembered
    assert users.authenticate(_basic("alice", "nope")) is None
    assert users.authenticate(_basic("mallory", "pw")) is None
    for header in (None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert users.authenticate(header) is None
    add_user(path, "alice", "new")  # a changed file is read again; the old password stops working
    assert users.authenticate(_basic("alice", "pw")) is None
    assert users.authenticate(_basic("alice", "new")) == "alice"
