"""The users file and password hashes: strict validation, atomic rewrites, both hash kinds."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import argon2
import bcrypt
import pytest

from monitor.adapters.passwords import Passwords, hash_problem
from monitor.config import ConfigError
from monitor.domain.access import Role, Scope, User
from monitor.users_file import (
    Account,
    parse_accounts,
    read_accounts,
    render_accounts,
    with_account,
    write_accounts,
)

PASSWORDS = Passwords(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
ARGON2_HASH = PASSWORDS.hash("rätt-lösen")
BCRYPT_HASH = bcrypt.hashpw(b"ratt-losen", bcrypt.gensalt(rounds=4)).decode()


def users_yaml(*entries: str) -> str:
    return "users:\n" + "".join(entries)


def entry(name: str = "anna", role: str = "viewer", extra: str = "", hashed: str = "") -> str:
    text = f'  - name: "{name}"\n    password_hash: "{hashed or ARGON2_HASH}"\n    role: {role}\n'
    return text + extra


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_accounts(text, Path("users.yaml"))
    return caught.value.errors


def test_a_valid_file_gives_each_user_its_role_and_scope() -> None:
    text = users_yaml(
        entry("anna", "viewer", '    scope: [lund, "tag:skane", "county:Skåne län"]\n'),
        entry("bertil", "admin", hashed=BCRYPT_HASH),
    )

    anna, bertil = parse_accounts(text)

    assert anna.user == User(
        "anna", Role.VIEWER, Scope.parse(["lund", "tag:skane", "county:Skåne län"])
    )
    assert bertil.user == User("bertil", Role.ADMIN)
    assert bertil.password_hash == BCRYPT_HASH


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            users_yaml(entry(role="boss")),
            "users[0].role: must be one of viewer, reviewer, admin (got 'boss')",
        ),
        (
            users_yaml(entry(hashed="hunter2")),
            "users[0].password_hash: must be an argon2id ($argon2id$…) or bcrypt ($2b$…) hash "
            "(got '***')",
        ),
        (
            users_yaml(entry(hashed="$argon2id$v=19$broken")),
            "users[0].password_hash: not a valid argon2id hash (got '***')",
        ),
        (
            users_yaml(entry(name="an na")),
            "users[0].name: must be 1–64 letters, digits or . _ @ -, starting with a letter or "
            "digit (got 'an na')",
        ),
        (
            users_yaml(entry(extra="    scope: lund\n")),
            "users[0].scope: must be a list of target ids, tag:NAME or county:NAME (got 'lund')",
        ),
        (
            users_yaml(entry(extra='    scope: [lund, "tag:"]\n')),
            "users[0].scope[1]: needs a name after tag: (got 'tag:')",
        ),
        (
            users_yaml(entry(extra="    scpe: [lund]\n")),
            "users[0].scpe: unknown key, did you mean 'scope'? (got '[lund]')",
        ),
        (
            users_yaml(entry("anna"), entry("Anna")),
            "users[1].name: is already the name of users[0] (got 'Anna')",
        ),
        (
            "users:\n  - name: anna\n    role: viewer\n",
            "users[0].password_hash: is required (got nothing)",
        ),
        ("people: []\n", "users: is required (got nothing)"),
        ("- anna\n", "(top level): must be a mapping of keys (got '[anna]')"),
    ],
)
def test_a_problem_in_the_users_file_names_its_key_and_value(text: str, error: str) -> None:
    assert error in errors_of(text)


def test_a_password_hash_never_appears_in_an_error() -> None:
    bad = ARGON2_HASH[:-3]
    text = users_yaml(entry(hashed=bad), entry("anna", "nobody"))

    message = "\n".join(errors_of(text))

    assert ARGON2_HASH[20:] not in message and bad[20:] not in message


def test_an_account_shows_no_hash_in_its_repr() -> None:
    account = Account(User("anna", Role.ADMIN), ARGON2_HASH)

    assert ARGON2_HASH not in repr(account)
    assert "anna" in repr(account)


def test_a_missing_users_file_is_an_error_unless_it_may_be_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file: not found"):
        read_accounts(tmp_path / "users.yaml")

    assert read_accounts(tmp_path / "users.yaml", missing_ok=True) == ()


def test_written_accounts_read_back_the_same_and_the_new_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    accounts = (
        Account(
            User("anna", Role.REVIEWER, Scope.parse(["county:Skåne län", "lund"])), ARGON2_HASH
        ),
        Account(User("bertil", Role.VIEWER), BCRYPT_HASH),
    )

    write_accounts(path, accounts)

    assert read_accounts(path) == accounts
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["users.yaml"]  # no temporary file left


def test_rewriting_keeps_the_files_permissions(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    write_accounts(path, [Account(User("anna", Role.VIEWER), ARGON2_HASH)])
    os.chmod(path, 0o640)

    write_accounts(path, [Account(User("bertil", Role.VIEWER), ARGON2_HASH)])

    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [a.name for a in read_accounts(path)] == ["bertil"]


def test_adding_an_existing_name_replaces_it_only_when_asked() -> None:
    accounts = (
        Account(User("anna", Role.VIEWER), ARGON2_HASH),
        Account(User("bertil", Role.VIEWER), ARGON2_HASH),
    )
    again = Account(User("Anna", Role.ADMIN), ARGON2_HASH)

    with pytest.raises(ValueError, match="user 'anna' exists already"):
        with_account(accounts, again, replace_existing=False)
    changed = with_account(accounts, again, replace_existing=True)

    assert [(a.name, a.user.role.value) for a in changed] == [
        ("Anna", "admin"),
        ("bertil", "viewer"),
    ]


def test_the_written_file_says_it_holds_hashes_only() -> None:
    text = render_accounts([Account(User("anna", Role.VIEWER), ARGON2_HASH)])

    assert text.startswith("# svarstid accounts")
    assert "scope" not in text  # every target: no scope key


@pytest.mark.parametrize(
    ("stored", "password", "matches"),
    [
        (ARGON2_HASH, "rätt-lösen", True),
        (ARGON2_HASH, "fel-lösen", False),
        (BCRYPT_HASH, "ratt-losen", True),
        (BCRYPT_HASH, "fel-losen", False),
        (ARGON2_HASH[:-4] + "AAAA", "rätt-lösen", False),
        ("$argon2id$v=19$nonsense", "rätt-lösen", False),
        ("$2b$04$short", "ratt-losen", False),
    ],
)
def test_argon2id_and_bcrypt_hashes_verify(stored: str, password: str, matches: bool) -> None:
    assert PASSWORDS.verify(stored, password) is matches


def test_bcrypt_compares_the_first_72_bytes_as_the_tools_that_made_the_hash_do() -> None:
    long_password = "x" * 80
    stored = bcrypt.hashpw(long_password[:72].encode(), bcrypt.gensalt(rounds=4)).decode()

    assert PASSWORDS.verify(stored, long_password)


def test_an_unknown_user_is_checked_against_a_dummy_and_never_matches() -> None:
    assert PASSWORDS.verify_unknown("rätt-lösen") is False
    assert PASSWORDS.verify_unknown("") is False


def test_new_hashes_are_argon2id_with_the_default_cost() -> None:
    stored = Passwords().hash("rätt-lösen")

    assert stored.startswith("$argon2id$")
    assert argon2.extract_parameters(stored).memory_cost == 65536
    assert hash_problem(stored) is None
