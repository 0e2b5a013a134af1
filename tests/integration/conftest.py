"""Shared fixtures for integration tests that need real servers.

``postgres_url`` (session): the URL of a throw-away PostgreSQL cluster started by
scripts/pg-tmp, or of the server named by SVARSTID_TEST_POSTGRES_URL (its user must be
allowed to CREATE DATABASE). ``fresh_postgres_url`` (function): an empty database of the
test's own on that server, dropped afterwards. ``migrated_postgres_url`` (function): the
same, already migrated to the head revision (a copy of a template migrated once per session).

When PostgreSQL cannot be started the tests are skipped with a hint, except in CI
(CI=true), where a missing database must fail the build rather than silently pass it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from mailservers import PostfixDovecot, start_postfix_dovecot
from sqlalchemy.engine import make_url

from monitor.adapters.sql import Store

PG_TMP = Path(__file__).resolve().parents[2] / "scripts" / "pg-tmp"
PG_START_TIMEOUT_S = 600  # includes an apt-get install on a fresh machine


def unavailable(reason: str) -> None:
    """Skip, or fail in CI, because a real server the test needs is missing."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: integration servers are required)")
    pytest.skip(
        f"{reason}. To run it: install the PostgreSQL server (apt-get install postgresql) "
        "so that scripts/pg-tmp can start a throw-away cluster, or set "
        "SVARSTID_TEST_POSTGRES_URL=postgresql+asyncpg://USER@HOST:PORT/postgres"
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get("SVARSTID_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    directory = tempfile.mkdtemp(prefix="svarstid-pg-")  # directly in /tmp: postgres must reach it
    try:
        yield _start_cluster(directory)
    finally:
        subprocess.run(["bash", str(PG_TMP), "stop", directory], capture_output=True, check=False)
        shutil.rmtree(directory, ignore_errors=True)


def _start_cluster(directory: str) -> str:
    try:
        started = subprocess.run(
            ["bash", str(PG_TMP), "start", directory],
            capture_output=True,
            text=True,
            timeout=PG_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        unavailable(f"scripts/pg-tmp could not run: {error}")
        raise  # unreachable: unavailable() raises
    if started.returncode != 0:
        unavailable(f"scripts/pg-tmp could not start PostgreSQL: {started.stderr.strip()[-400:]}")
    return started.stdout.strip().splitlines()[-1]


async def _admin(server_url: str, statement: str) -> None:
    # Plain asyncpg: an SQLAlchemy engine per call would spend ~0.3 s initialising its dialect.
    url = make_url(server_url)
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """Create database ``name`` on the server of ``server_url``; returns its URL."""
    # FILE_COPY: a 15 ms copy instead of 50 ms of WAL for a small template (PostgreSQL 15+).
    copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{copy}')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unique_database_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def fresh_postgres_url(postgres_url: str) -> AsyncIterator[str]:
    name = unique_database_name()
    url = await create_database(postgres_url, name)
    try:
        yield url
    finally:
        await drop_database(postgres_url, name)


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_url: str) -> Iterator[str]:
    """Name of a database migrated to head once per session, to copy from."""
    name = unique_database_name("svarstid_template")

    async def migrate() -> None:
        store = Store.from_url(await create_database(postgres_url, name))
        try:
            await store.upgrade()
        finally:
            await store.close()

    asyncio.run(migrate())
    try:
        yield name
    finally:
        asyncio.run(drop_database(postgres_url, name))


@pytest.fixture
async def migrated_postgres_url(
    postgres_url: str, migrated_postgres_template: str
) -> AsyncIterator[str]:
    name = unique_database_name()
    url = await create_database(postgres_url, name, template=migrated_postgres_template)
    try:
        yield url
    finally:
        await drop_database(postgres_url, name)


# -- Postfix + Dovecot (H12: scripts/mail-servers, tests/integration/mailservers.py) -------------

MONITOR_MAILBOXES = tuple(f"svar-{n}@matning.example.se" for n in range(1, 9))
MUNICIPAL_MAILBOXES = ("kontakt@kommun.example.se", "semester@kommun.example.se")
VACATION_MAILBOX = "semester@kommun.example.se"


@pytest.fixture(scope="session")
def postfix_dovecot() -> Iterator[PostfixDovecot]:
    """Private Postfix + Dovecot for the session: municipal mailboxes (one with a Sieve
    vacation rule) and several monitor mailboxes, one per test (``monitor_mailbox``)."""
    servers = start_postfix_dovecot(
        users=(*MUNICIPAL_MAILBOXES, *MONITOR_MAILBOXES),
        domains=("kommun.example.se", "matning.example.se"),
        vacation=VACATION_MAILBOX,
    )
    try:
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(servers.directory, ignore_errors=True)


_unused_monitor_mailboxes = list(MONITOR_MAILBOXES)


@pytest.fixture
def monitor_mailbox() -> str:
    """A monitor mailbox on ``postfix_dovecot`` that no other test of the session reads."""
    if not _unused_monitor_mailboxes:
        pytest.fail("add more MONITOR_MAILBOXES in tests/integration/conftest.py")
    return _unused_monitor_mailboxes.pop(0)
