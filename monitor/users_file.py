"""The users file named by ``http.users_file``: accounts for the status page.

```yaml
users:
  - name: anna
    password_hash: "$argon2id$v=19$m=65536,t=3,p=4$…"
    role: viewer            # viewer | reviewer | admin
    scope: [lund, "tag:skane", "county:Skåne län"]   # optional; none = every target
```

Validated as strictly as the main configuration, with the same ``key.path: what is wrong (got
'value')`` lines; a password hash is never shown in an error. ``svarstid user add`` rewrites
the whole file atomically (comments are not kept).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationInfo, model_validator

from monitor.adapters.passwords import hash_problem
from monitor.config import (
    ConfigError,
    check_text,
    fail,
    line,
    one_of,
    parse_yaml,
    read_text,
    validate,
)
from monitor.domain.access import EVERYTHING, Role, Scope, User, parse_scope_entry

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_NEW_FILE_MODE = 0o600  # hashes are not passwords, but nobody else needs to read them
_HEADER = "# svarstid accounts (see `svarstid user add`); this file holds password hashes only.\n"


@dataclass(frozen=True)
class Account:
    """A user and the hash its password is checked against (kept out of the repr)."""

    user: User
    password_hash: str = field(repr=False)

    @property
    def name(self) -> str:
        return self.user.name


# ---------------------------------------------------------------------------------------------
# Validation


def check_user_name(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    if _NAME.fullmatch(text) is None:
        problem = "must be 1–64 letters, digits or . _ @ -, starting with a letter or digit"
        raise fail(problem, value)
    return text


def check_password_hash(value: Any, _info: ValidationInfo | None = None) -> str:
    text = check_text(value)
    problem = hash_problem(text)
    if problem is not None:
        raise fail(problem, value)
    return text


def check_scope(value: Any, _info: ValidationInfo | None = None) -> Scope:
    if value is None:
        return EVERYTHING
    if not isinstance(value, list | tuple):
        raise fail("must be a list of target ids, tag:NAME or county:NAME", value)
    entries = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise fail("must be text; put it in quotes", item, at=(index,))
        try:
            entries.append(parse_scope_entry(item))
        except ValueError as error:
            raise fail(str(error), item, at=(index,)) from None
    return Scope(tuple(entries))


_STRICT = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _UserEntry(BaseModel):
    model_config = _STRICT
    name: Annotated[str, PlainValidator(check_user_name)]
    password_hash: Annotated[str, PlainValidator(check_password_hash)]
    role: Annotated[Role, PlainValidator(one_of(Role))]
    scope: Annotated[Scope, PlainValidator(check_scope)] = EVERYTHING


class _UsersFile(BaseModel):
    model_config = _STRICT
    users: tuple[_UserEntry, ...]

    @model_validator(mode="after")
    def _names_are_unique(self) -> _UsersFile:
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.users):
            folded = entry.name.casefold()
            if folded in seen:
                problem = f"is already the name of users[{seen[folded]}]"
                raise fail(problem, entry.name, at=("users", index, "name"))
            seen[folded] = index
        return self


def parse_accounts(text: str, path: Path | None = None) -> tuple[Account, ...]:
    """The accounts in ``text`` (from ``path``, for error reports); raises ConfigError."""
    raw = parse_yaml(text, path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([line((), "must be a mapping of keys", raw)], path)
    parsed = validate(_UsersFile, raw, {}, path)
    return tuple(_account(entry) for entry in parsed.users)


def _account(entry: _UserEntry) -> Account:
    return Account(User(entry.name, entry.role, entry.scope), entry.password_hash)


def read_accounts(path: Path, *, missing_ok: bool = False) -> tuple[Account, ...]:
    """The accounts in the users file; a missing file is an error unless ``missing_ok``."""
    if missing_ok and not path.exists():
        return ()
    return parse_accounts(read_text(path), path)


# ---------------------------------------------------------------------------------------------
# Changing and writing


def with_account(
    accounts: Sequence[Account], account: Account, *, replace_existing: bool
) -> tuple[Account, ...]:
    """``accounts`` with ``account`` added, or put in place of the one with its name.

    Raises ValueError when the name exists (in any case) and ``replace_existing`` is false.
    """
    folded = account.name.casefold()
    position = next((i for i, a in enumerate(accounts) if a.name.casefold() == folded), None)
    if position is None:
        return (*accounts, account)
    if not replace_existing:
        raise ValueError(f"user {accounts[position].name!r} exists already")
    changed = list(accounts)
    changed[position] = account
    return tuple(changed)


def render_accounts(accounts: Iterable[Account]) -> str:
    """The users file for ``accounts``, in the format ``parse_accounts`` reads."""
    entries = [_entry(account) for account in accounts]
    return _HEADER + yaml.safe_dump(
        {"users": entries}, allow_unicode=True, sort_keys=False, default_flow_style=False
    )


def _entry(account: Account) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": account.user.name,
        "password_hash": account.password_hash,
        "role": account.user.role.value,
    }
    if not account.user.scope.is_everything:
        entry["scope"] = [str(item) for item in account.user.scope.entries]
    return entry


def write_accounts(path: Path, accounts: Sequence[Account]) -> None:
    """Replace the users file atomically: readers see the old file or the new one, never half.

    The file keeps its permissions; a new file is readable by its owner only.
    """
    text = render_accounts(accounts)
    parse_accounts(text, path)  # what is written must load again
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else _NEW_FILE_MODE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), mode)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # The rename itself must reach the disk too, or a crash could bring the old file back.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
