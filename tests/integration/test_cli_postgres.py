"""Every subcommand as a real process against PostgreSQL with the password only in a file.

The test cluster trusts every local connection, so this test adds a role of its own that must
log in with a SCRAM password (pg_hba.conf lines ahead of the trust lines, reloaded), checks
that a login without the password is refused, and then runs each subcommand with
``database.url`` holding no password and ``database.password_file`` holding it.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

FAST = Path(__file__).resolve().parents[1] / "fast"
if str(FAST) not in sys.path:  # the shared process driver lives with the fast tests
    sys.path.insert(0, str(FAST))

from cli_matrix import LUND, Cli, base_config, every_subcommand, free_port  # noqa: E402
from daemon_support import write_config  # noqa: E402

from monitor.demo.mailservers import RecordingSmtpServer  # noqa: E402

PASSWORD = "Se/cr3t@PW-" + uuid.uuid4().hex[:8]  # a '/' and a raw '@': both break naive URLs


async def _execute(server_url: str, *statements: str) -> list[object]:
    url = make_url(server_url)
    connection = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        return [await connection.fetchval(statement) for statement in statements]
    finally:
        await connection.close()


@pytest.fixture
async def password_role(postgres_url: str) -> AsyncIterator[tuple[str, str]]:
    """(role, database) that accept only a SCRAM password login over TCP."""
    role = f"pw_{uuid.uuid4().hex[:10]}"
    quoted = PASSWORD.replace("'", "''")
    [hba_file] = await _execute(postgres_url, "SHOW hba_file")
    hba = Path(str(hba_file))
    try:
        original = hba.read_text()
        lines = (
            f"host all {role} 127.0.0.1/32 scram-sha-256\nhost all {role} ::1/128 scram-sha-256\n"
        )
        hba.write_text(lines + original)
    except OSError as error:
        pytest.skip(f"cannot add a password rule to {hba}: {error.strerror}")
    try:
        await _execute(
            postgres_url,
            "SET password_encryption = 'scram-sha-256'",
            f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'",
            f'CREATE DATABASE "{role}" OWNER {role}',
            "SELECT pg_reload_conf()",
        )
        yield role, role
    finally:
        hba.write_text(original)
        await _execute(
            postgres_url,
            "SELECT pg_reload_conf()",
            f'DROP DATABASE IF EXISTS "{role}" WITH (FORCE)',
            f"DROP ROLE IF EXISTS {role}",
        )


@pytest.fixture
async def smtp() -> AsyncIterator[RecordingSmtpServer]:
    server = RecordingSmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def listen_port() -> Iterator[int]:
    yield free_port()


async def test_a_login_without_the_password_is_refused(
    postgres_url: str, password_role: tuple[str, str]
) -> None:
    role, database = password_role
    server = make_url(postgres_url)
    without = server.set(username=role, database=database, password=None)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await _execute(without.render_as_string(hide_password=False), "SELECT 1")
    wrong = server.set(username=role, database=database, password="wrong")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await _execute(wrong.render_as_string(hide_password=False), "SELECT 1")


async def test_every_subcommand_logs_in_with_the_password_from_password_file(
    tmp_path: Path,
    postgres_url: str,
    password_role: tuple[str, str],
    smtp: RecordingSmtpServer,
    listen_port: int,
) -> None:
    role, database = password_role
    server = make_url(postgres_url)
    url = server.set(username=role, database=database, password=None)
    (tmp_path / "db_password").write_text(PASSWORD + "\n")
    section = {
        "url": url.render_as_string(hide_password=False),
        "password_file": "db_password",
    }
    config = write_config(tmp_path, [LUND], base_config(smtp.port, listen_port, section))
    await every_subcommand(Cli(config), smtp, listen_port)
    # The read-only commands before `db upgrade` ran no DDL: only db upgrade made the tables.
    [tables] = await _execute(
        server.set(database=database).render_as_string(hide_password=False),
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alembic_version'",
    )
    assert tables == 1


async def test_the_password_file_also_works_as_an_environment_override(
    tmp_path: Path,
    postgres_url: str,
    password_role: tuple[str, str],
    smtp: RecordingSmtpServer,
) -> None:
    role, database = password_role
    url = make_url(postgres_url).set(username=role, database=database, password=None)
    (tmp_path / "db_password").write_text(PASSWORD)
    decoy = {"url": "sqlite+aiosqlite:///not-here/decoy.db"}
    config = write_config(tmp_path, [LUND], base_config(smtp.port, free_port(), decoy))
    cli = Cli(
        config,
        {
            "SVARSTID_DATABASE__URL": url.render_as_string(hide_password=False),
            "SVARSTID_DATABASE__PASSWORD_FILE": str(tmp_path / "db_password"),
        },
    )
    refused = await cli("report")
    assert refused.code == 3 and "has no svarstid schema" in refused.one_error_line("report")
    assert PASSWORD not in refused.err
    assert (await cli("db", "upgrade")).code == 0
    for command in ("status", "unmatched", "report"):
        shown = await cli(command)
        assert shown.code == 0, (command, shown.err)


async def test_a_wrong_password_in_the_file_is_one_line_exit_3_without_the_password(
    tmp_path: Path, postgres_url: str, password_role: tuple[str, str]
) -> None:
    role, database = password_role
    url = make_url(postgres_url).set(username=role, database=database, password=None)
    (tmp_path / "db_password").write_text("Fel/l@senord")
    section = {"url": url.render_as_string(hide_password=False), "password_file": "db_password"}
    config = write_config(tmp_path, [LUND], base_config(2525, free_port(), section))
    for argv in (("status",), ("report",), ("db", "upgrade"), ("run",)):
        failed = await Cli(config)(*argv)
        command = " ".join(argv)
        line = failed.one_error_line(command)
        assert failed.code == 3, failed.err
        assert "InvalidPasswordError" in line and "Fel/l" not in line and "senord" not in line
