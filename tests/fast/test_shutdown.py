"""`svarstid run` as a real process: it becomes ready, and SIGTERM ends it cleanly with exit 0."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp
from daemon_support import LUND, local_config, write_config

from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer

USER, PASSWORD = "svarstid", "imap-secret-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_run_config(folder: Path, smtp_port: int, imap_port: int, http_port: int) -> Path:
    config = local_config(folder / "run.db", smtp_port, imap_port, login=(USER, PASSWORD))
    config["http"] = {"listen": f"127.0.0.1:{http_port}"}
    config["logging"] = {"format": "json", "level": "debug"}
    return write_config(folder, [LUND], config)


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> dict[str, object]:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert process.returncode is None, "daemon exited early"
            try:
                async with http.get(f"{url}/-/ready") as response:
                    if response.status == 200:
                        body: dict[str, object] = await response.json()
                        return body
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("daemon never became ready")


async def test_run_becomes_ready_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    smtp_port = await smtp.start()
    imap_port = await imap.start(users={USER: PASSWORD})
    http_port = free_port()
    config = write_run_config(tmp_path, smtp_port, imap_port, http_port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        ready = await wait_ready(f"http://127.0.0.1:{http_port}", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
        await smtp.stop()
        await imap.stop()
    assert ready["ready"] is True
    assert process.returncode == 0
    lines = stderr.decode().splitlines()
    events = [json.loads(line)["msg"] for line in lines if line.startswith("{")]
    assert "svarstid started" in events
    assert events[-1] == "svarstid stopped"
    assert PASSWORD not in stderr.decode()
