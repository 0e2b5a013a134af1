"""Every subcommand as a real process on SQLite whose path is only in SVARSTID_DATABASE__URL,
and the one-line errors with their documented exit codes.

The file's database.url names a folder that does not exist: a command that read the file's
URL instead of the override fails with exit 3. (PostgreSQL with the password only in a
file: tests/integration/test_cli_postgres.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cli_matrix import LUND, Cli, base_config, every_subcommand, free_port
from daemon_support import write_config

from monitor.demo.mailservers import RecordingSmtpServer

REPLIES = Path(__file__).parents[2] / "tests" / "data" / "replies-sv"


@pytest.fixture
async def smtp() -> AsyncIterator[RecordingSmtpServer]:
    server = RecordingSmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def sqlite_cli(folder: Path, smtp_port: int, listen_port: int) -> Cli:
    decoy = {"url": f"sqlite+aiosqlite:///{folder / 'not-here' / 'decoy.db'}"}
    config = write_config(folder, [LUND], base_config(smtp_port, listen_port, decoy))
    url = f"sqlite+aiosqlite:///{folder / 'state' / 'svarstid.db'}"
    (folder / "state").mkdir()
    return Cli(config, {"SVARSTID_DATABASE__URL": url})


async def test_every_subcommand_uses_the_sqlite_path_given_only_in_the_environment(
    tmp_path: Path, smtp: RecordingSmtpServer
) -> None:
    listen = free_port()
    cli = sqlite_cli(tmp_path, smtp.port, listen)
    await every_subcommand(cli, smtp, listen)
    assert (tmp_path / "state" / "svarstid.db").is_file()
    assert not (tmp_path / "not-here").exists()


async def test_read_only_commands_create_no_database_file(
    tmp_path: Path, smtp: RecordingSmtpServer
) -> None:
    cli = sqlite_cli(tmp_path, smtp.port, free_port())
    for command in ("status", "unmatched", "report"):
        refused = await cli(command)
        assert refused.code == 3
        assert refused.one_error_line(command) == (
            f"svarstid {command}: no database at {tmp_path / 'state' / 'svarstid.db'}; "
            "create or migrate it with `svarstid db upgrade`"
        )
    assert list((tmp_path / "state").iterdir()) == []


async def test_inspect_runs_as_a_process_without_any_database(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "unused.yaml")
    files = sorted(REPLIES.glob("*.eml"))[:2]
    inspected = await cli(
        "inspect", "--json", "--probes", str(REPLIES / "probes.json"), *map(str, files)
    )
    assert inspected.code == 0, inspected.err
    assert len(inspected.out.splitlines()) == 2


# -- one line, a documented exit code, never a traceback --------------------------------------

UNREACHABLE = "postgresql+asyncpg://svarstid:Se/cr3tPW@127.0.0.1:1/svarstid"


@pytest.mark.parametrize(
    ("environ", "argv", "code", "says"),
    [
        ({"SVARSTID_DATABASE__URL": "sqlite+aiosqlite:///{tmp}/saknas/x.db"}, ["status"], 3,
         "database folder {tmp}/saknas does not exist"),
        ({"SVARSTID_DATABASE__URL": "sqlite+aiosqlite:///{tmp}/saknas/x.db"}, ["run"], 3,
         "database folder {tmp}/saknas does not exist"),
        ({"SVARSTID_DATABASE__URL": "sqlite+aiosqlite:///{tmp}/saknas/x.db"}, ["db", "upgrade"],
         3, "database folder {tmp}/saknas does not exist"),
        ({"SVARSTID_DATABASE__URL": UNREACHABLE}, ["status"], 3,
         "is not reachable"),
        ({"SVARSTID_DATABASE__URL": UNREACHABLE}, ["run"], 3,
         "is not reachable"),
        ({"SVARSTID_DATABASE__URL": UNREACHABLE}, ["send-now", "lund"], 3,
         "is not reachable"),
        ({}, ["report", "--period", "0001"], 2, "period 0001 is out of range"),
        ({}, ["report", "--period", "2025-13"], 2, "2025-13"),
        ({}, ["report", "--output", "{tmp}/saknas/r.txt"], 4, "no folder {tmp}/saknas"),
        ({}, ["report", "--output", "{tmp}"], 4, "cannot write {tmp}"),
    ],
)  # fmt: skip
async def test_a_failure_is_one_line_with_its_exit_code(
    tmp_path: Path,
    environ: dict[str, str],
    argv: list[str],
    code: int,
    says: str,
) -> None:
    database = {"url": f"sqlite+aiosqlite:///{tmp_path / 'svarstid.db'}"}
    config = write_config(tmp_path, [LUND], base_config(2525, free_port(), database))
    ready = Cli(config)
    assert (await ready("db", "upgrade")).code == 0
    given = {key: value.format(tmp=tmp_path) for key, value in environ.items()}
    failed = await Cli(config, given)(*[part.format(tmp=tmp_path) for part in argv])
    command = "db upgrade" if argv[0] == "db" else argv[0]
    line = failed.one_error_line(command)
    assert failed.code == code, failed.err
    assert says.format(tmp=tmp_path) in line
    assert "Se/cr3t" not in line and "cr3tPW" not in line


async def test_a_lock_file_that_cannot_be_opened_stops_run_with_one_line(tmp_path: Path) -> None:
    database = {"url": f"sqlite+aiosqlite:///{tmp_path / 'svarstid.db'}"}
    config = write_config(tmp_path, [LUND], base_config(2525, free_port(), database))
    assert (await Cli(config)("db", "upgrade")).code == 0
    # A directory where the lock file should be: open(2) fails as for a read-only file.
    (tmp_path / "svarstid.db.leader.lock").mkdir()
    failed = await Cli(config)("run")
    assert failed.code == 4, failed.err
    assert failed.one_error_line("run") == (
        f"svarstid run: cannot open {tmp_path / 'svarstid.db.leader.lock'}: Is a directory"
    )


async def test_a_database_at_an_older_schema_is_refused_by_read_only_commands(
    tmp_path: Path,
) -> None:
    import sqlite3

    database = {"url": f"sqlite+aiosqlite:///{tmp_path / 'svarstid.db'}"}
    config = write_config(tmp_path, [LUND], base_config(2525, free_port(), database))
    assert (await Cli(config)("db", "upgrade")).code == 0
    with sqlite3.connect(tmp_path / "svarstid.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    for command in ("status", "unmatched", "report"):
        refused = await Cli(config)(command)
        assert refused.code == 3
        assert "is at schema revision 0001" in refused.one_error_line(command)
    with sqlite3.connect(tmp_path / "svarstid.db") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)


def test_check_config_says_the_database_folder_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    database = {"url": f"sqlite+aiosqlite:///{tmp_path / 'saknas' / 'svarstid.db'}"}
    config = write_config(tmp_path, [LUND], base_config(2525, 9180, database))
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"database folder {tmp_path / 'saknas'} does not exist" in out
    assert "no database yet" not in out
    assert not (tmp_path / "saknas").exists()
