"""`svarstid user add|list`: the accounts in the users file named by ``http.users_file``."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TextIO

from monitor.adapters.passwords import Passwords
from monitor.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, _add_config, load
from monitor.domain.access import Role, Scope, User
from monitor.users_file import (
    Account,
    check_user_name,
    read_accounts,
    with_account,
    write_accounts,
)

SHORTEST_PASSWORD = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``user`` command's actions, on the parser ``svarstid user`` got."""
    actions = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add an account (asks for its password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.add_argument(
        "--scope",
        nargs="+",
        action="extend",
        default=[],
        metavar="ENTRY",
        help="target ids, tag:NAME or county:NAME the user may see (default: every target)",
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin's first line"
    )
    add.add_argument("--replace", action="store_true", help="replace an account of that name")
    _add_config(add)
    listing = actions.add_parser("list", help="the accounts, without their hashes")
    _add_config(listing)


def run(args: argparse.Namespace) -> int:
    path = load(args).http.users_file
    if path is None:
        print("svarstid user: http.users_file is not set in the configuration", file=sys.stderr)
        return EXIT_CONFIG
    if args.user_command == "list":
        return list_users(path, sys.stdout)
    return add_user(args, path)


def list_users(path: Path, out: TextIO) -> int:
    rows = [("NAME", "ROLE", "SCOPE")]
    rows += [(a.name, a.user.role.value, str(a.user.scope)) for a in read_accounts(path)]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)
    return EXIT_OK


def add_user(args: argparse.Namespace, path: Path) -> int:
    try:
        name = check_user_name(args.name)
        scope = Scope.parse(args.scope)
    except ValueError as error:
        print(f"svarstid user add: {_problem(error)}", file=sys.stderr)
        return EXIT_FAILURE
    accounts = read_accounts(path, missing_ok=True)
    password = _password(args.password_stdin)
    if password is None:
        return EXIT_FAILURE
    account = Account(User(name, Role(args.role), scope), Passwords().hash(password))
    try:
        changed = with_account(accounts, account, replace_existing=args.replace)
    except ValueError as error:
        print(f"svarstid user add: {error}; use --replace to change it", file=sys.stderr)
        return EXIT_FAILURE
    write_accounts(path, changed)
    print(f"user {name} ({args.role}, scope: {scope}) written to {path}")
    return EXIT_OK


def _problem(error: ValueError) -> str:
    # pydantic's custom errors carry the message in their context.
    context = getattr(error, "context", None) or {}
    return str(context.get("problem", error))


def _password(from_stdin: bool) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            print("svarstid user add: the passwords differ", file=sys.stderr)
            return None
    if len(password) < SHORTEST_PASSWORD:
        print(
            f"svarstid user add: the password needs at least {SHORTEST_PASSWORD} characters",
            file=sys.stderr,
        )
        return None
    return password
