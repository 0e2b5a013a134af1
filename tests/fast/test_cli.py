"""The `svarstid` command line as a user runs it: exit codes, messages, tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from daemon_support import LUND, local_config, write_config

from monitor.cli import main
from monitor.demo.mailservers import RecordingSmtpServer

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "svarstid.example.yaml"
REPLIES = ROOT / "tests" / "data" / "replies-sv"


def run_cli(argv: list[str]) -> int:
    return main(argv)


def test_check_config_on_the_example_lists_every_target_with_a_next_send_time(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(["check-config", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    for target_id in ("stockholm", "goteborg", "malmo", "uppsala", "lulea"):
        assert target_id in out
    assert "no database yet" in out
    assert not (tmp_path / "svarstid.db").exists()


def test_check_config_error_exits_2_naming_key_and_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVARSTID_SMTP__SECURITY", "ssl")
    assert run_cli(["check-config", "--config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "smtp.security: must be one of starttls, tls, none (got 'ssl')" in err


def test_config_defaults_to_svarstid_config_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVARSTID_CONFIG", str(EXAMPLE))
    assert run_cli(["check-config"]) == 0
    assert "targets      5" in capsys.readouterr().out


def test_missing_config_file_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SVARSTID_CONFIG", raising=False)
    assert run_cli(["status"]) == 2
    assert "svarstid.yaml" in capsys.readouterr().err


def write_cli_config(folder: Path, smtp_port: int, *, paused: bool = False) -> Path:
    config = local_config(folder / "cli.db", smtp_port, imap_port=1)
    return write_config(folder, [{**LUND, "paused": paused}], config)


async def test_send_now_sends_then_refuses_while_outstanding_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smtp = RecordingSmtpServer()
    port = await smtp.start()
    config = str(write_cli_config(tmp_path, port))
    try:
        assert await asyncio.to_thread(run_cli, ["send-now", "lund", "--config", config]) == 0
        assert "sent" in capsys.readouterr().out
        assert await asyncio.to_thread(run_cli, ["send-now", "lund", "--config", config]) == 1
        assert "outstanding probe" in capsys.readouterr().err
        forced = ["send-now", "lund", "--force", "--config", config]
        assert await asyncio.to_thread(run_cli, forced) == 0
    finally:
        await smtp.stop()
    assert len(smtp.messages) == 2
    assert await asyncio.to_thread(run_cli, ["status", "--config", config]) == 0
    status = capsys.readouterr().out
    assert "lund" in status and " 2 " in status


async def test_send_now_refuses_a_paused_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smtp = RecordingSmtpServer()
    port = await smtp.start()
    config = str(write_cli_config(tmp_path, port, paused=True))
    try:
        assert await asyncio.to_thread(run_cli, ["send-now", "lund", "--config", config]) == 1
    finally:
        await smtp.stop()
    assert "paused" in capsys.readouterr().err
    assert smtp.messages == []


def test_db_upgrade_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_cli_config(tmp_path, 2525)
    assert run_cli(["db", "upgrade", "--config", str(config)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "cli.db").exists()


def test_inspect_prints_one_json_line_per_message(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(REPLIES.glob("*.eml"))[:3]
    probes = REPLIES / "probes.json"
    argv = ["inspect", "--json", "--probes", str(probes), *map(str, files)]
    assert run_cli(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert all('"kind"' in line and '"probe_token"' in line for line in lines)
