"""The image of deploy/container/Containerfile, built and run by podman.

scripts/container-image builds it once per session on a Debian bookworm base made by
mmdebstrap (the base, the dependencies' wheels and podman's layers are cached between runs),
installing svarstid from the wheel it builds from the checkout. The container runs on the
host network against in-process SMTP and IMAP servers on loopback, with its configuration
mounted read-only and its state in a named volume, as compose runs it.

Without root, podman, runc or mmdebstrap (scripts/integration-setup installs them) the tests
skip with a how-to, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mailservers import MONITOR_DOMAIN, DaemonConfig, eventually, free_port, http_get, in_ci

from monitor.demo.mailservers import InProcessImapServer, RecordingSmtpServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "container-image"
BUILD_TIMEOUT_S = 900  # a first run makes the Debian base and fetches the wheels
STOP_GRACE_S = 60  # stop_grace_period of the svarstid service in deploy/compose.yaml
USER, PASSWORD = f"svar@{MONITOR_DOMAIN}", "imap-secret"
IMAGE_USER_ID = 10001
COMPILERS = re.compile(r"(x86_64-linux-gnu-)?(cc|gcc|g\+\+|c\+\+|clang|cc1|tcc|cpp)(-[\d.]+)?")
SIZE_BUDGET_MB = 300  # the dependencies' wheels are ~90 MB of it
TEST_TOOLS = (
    "pytest", "_pytest", "pytest_asyncio", "hypothesis", "aiosmtpd", "pymap", "trustme",
    "mypy", "ruff", "tests",
)  # fmt: skip


@dataclass(frozen=True)
class Image:
    """The built image and the environment every podman call on its storage needs."""

    name: str
    environment: dict[str, str]

    def podman(self, *arguments: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["podman", *arguments],
            capture_output=True,
            text=True,
            env=self.environment,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"podman {' '.join(arguments)}: {done.stderr[-2000:]}"
        return done.stdout.strip()


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the container tests are required)")
    pytest.skip(
        f"{reason}. To run it: as root, `bash scripts/integration-setup` (apt-get install "
        "podman runc mmdebstrap), then `pytest -m integration`"
    )


@pytest.fixture(scope="session")
def image() -> Image:
    if os.geteuid() != 0:
        unavailable("building the image needs root (rootless podman needs /etc/subuid)")
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed")
    built = subprocess.run(
        ["bash", str(BUILD), "build"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if built.returncode != 0:
        pytest.fail(f"scripts/container-image failed:\n{built.stderr[-3000:]}")
    values = dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)
    environment = {
        **os.environ,
        "CONTAINERS_CONF": values["CONTAINERS_CONF"],
        "CONTAINERS_STORAGE_CONF": values["CONTAINERS_STORAGE_CONF"],
    }
    return Image(values["IMAGE"], environment)


@pytest.fixture
def state_volume(image: Image) -> Iterator[str]:
    name = f"svarstid-test-{uuid.uuid4().hex[:12]}"
    image.podman("volume", "create", name)
    try:
        yield name
    finally:
        image.podman("volume", "rm", "--force", name)


@dataclass
class MailServers:
    smtp: RecordingSmtpServer
    imap: InProcessImapServer


@pytest.fixture
async def mail_servers() -> AsyncIterator[MailServers]:
    smtp, imap = RecordingSmtpServer(), InProcessImapServer()
    await smtp.start()
    await imap.start(users={USER: PASSWORD})
    try:
        yield MailServers(smtp, imap)
    finally:
        await smtp.stop()
        await imap.stop()


def write_config(folder: Path, servers: MailServers, http_port: int) -> None:
    """svarstid.yaml and targets.yaml, readable by the image's user, SQLite in the volume."""
    folder.mkdir(mode=0o755)
    DaemonConfig(
        folder=folder,
        smtp_port=servers.smtp.port,
        imap_port=servers.imap.port,
        imap_user=USER,
        imap_password=PASSWORD,
        database_url="sqlite+aiosqlite:////var/lib/svarstid/svarstid.db",
        targets=[{"id": "ale", "name": "Ale", "address": "kontakt@ale.example.se"}],
        mailbox_address=USER,
        reply_address=f"svar+{{token}}@{MONITOR_DOMAIN}",
        http_listen=f"127.0.0.1:{http_port}",
    ).write()
    for path in folder.iterdir():
        path.chmod(0o644)


async def answers_ok(port: int, path: str) -> bool:
    status, _ = await asyncio.to_thread(http_get, port, path)
    return status == 200


def process_ids(pid: int, kind: str) -> set[int]:
    """Real, effective, saved and filesystem ``kind`` ("Uid" or "Gid") of a process, as its
    host kernel sees it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return {int(field) for field in line.split()[1:]}
    raise AssertionError(f"no {kind} line for process {pid}")


async def test_image_serves_ready_sends_a_probe_and_exits_0_on_sigterm_within_the_grace(
    tmp_path: Path, image: Image, state_volume: str, mail_servers: MailServers
) -> None:
    http_port = free_port()
    write_config(tmp_path / "etc", mail_servers, http_port)
    name = f"svarstid-test-{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "container.log"
    with log_path.open("wb") as log:
        container = await asyncio.create_subprocess_exec(
            "podman", "run", "--rm", "--name", name, "--pull=never", "--network=host",
            "--no-healthcheck",  # podman would schedule it with systemd timers
            "--volume", f"{tmp_path / 'etc'}:/etc/svarstid:ro",
            "--volume", f"{state_volume}:/var/lib/svarstid",
            image.name,
            stdout=log, stderr=subprocess.STDOUT, env=image.environment,
        )  # fmt: skip
    try:
        await eventually(
            lambda: answers_ok(http_port, "/-/healthy"), timeout=90, what="/-/healthy 200"
        )
        await eventually(lambda: answers_ok(http_port, "/-/ready"), timeout=90, what="ready")
        (delivered,) = await asyncio.wait_for(mail_servers.smtp.wait_for_messages(1), 60)
        assert delivered.rcpt_tos == ("kontakt@ale.example.se",)

        pid = int(image.podman("inspect", "--format", "{{.State.Pid}}", name))
        assert process_ids(pid, "Uid") == process_ids(pid, "Gid") == {IMAGE_USER_ID}
        assert await healthcheck_passes_inside(image, name, http_port)

        image.podman("kill", "--signal", "TERM", name)
        signalled = time.monotonic()
        code = await asyncio.wait_for(container.wait(), STOP_GRACE_S)
        stopped_in = time.monotonic() - signalled
    finally:
        if container.returncode is None:
            with contextlib.suppress(AssertionError):
                image.podman("rm", "--force", "--time", "0", name)
            await container.wait()
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-3000:]
    assert stopped_in < STOP_GRACE_S
    database = Path(image.podman("volume", "inspect", "--format", "{{.Mountpoint}}", state_volume))
    owner = (database / "svarstid.db").stat()
    assert (owner.st_uid, owner.st_gid) == (IMAGE_USER_ID, IMAGE_USER_ID)


async def healthcheck_passes_inside(image: Image, name: str, http_port: int) -> bool:
    """The image's own HEALTHCHECK command, run in the container against the test's port."""
    test = image.podman("image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}",
                        image.name)  # fmt: skip
    command = json.loads(test)
    assert command[0] == "CMD"
    code = command[-1].replace("127.0.0.1:9180", f"127.0.0.1:{http_port}")
    checked = await asyncio.create_subprocess_exec(
        "podman", "exec", name, *command[1:-1], code, env=image.environment
    )
    return await asyncio.wait_for(checked.wait(), 30) == 0


@pytest.fixture(scope="session")
def image_root(image: Image) -> Iterator[Path]:
    root = Path(image.podman("image", "mount", image.name))
    try:
        yield root
    finally:
        image.podman("image", "unmount", image.name)


def test_image_runs_as_the_svarstid_user_with_uid_10001(image: Image, image_root: Path) -> None:
    assert image.podman("image", "inspect", "--format", "{{.Config.User}}", image.name) == (
        "svarstid"
    )
    users = (image_root / "etc" / "passwd").read_text().splitlines()
    assert any(line.startswith(f"svarstid:x:{IMAGE_USER_ID}:{IMAGE_USER_ID}:") for line in users)


def test_image_finds_svarstid_first_and_then_only_the_system_programs(image: Image) -> None:
    environment = json.loads(
        image.podman("image", "inspect", "--format", "{{json .Config.Env}}", image.name)
    )
    (path,) = [entry.removeprefix("PATH=") for entry in environment if entry.startswith("PATH=")]
    folders = path.split(":")
    assert folders[0] == "/opt/svarstid/bin"
    assert "" not in folders and "." not in folders  # no search in the working directory
    assert {"/usr/bin", "/bin"} <= set(folders)


def test_image_holds_no_compiler(image_root: Path) -> None:
    found = [
        path
        for directory in ("usr/bin", "usr/sbin", "usr/local/bin", "opt/svarstid/bin")
        if (image_root / directory).is_dir()
        for path in (image_root / directory).iterdir()
        if COMPILERS.fullmatch(path.name)
    ]
    assert (image_root / "usr/bin/python3").exists()  # the walk looks where programs are
    assert found == []


def test_image_holds_no_pip_cache_and_no_pip_in_its_environment(image_root: Path) -> None:
    home_caches = [path for path in image_root.glob("**/.cache") if path.is_dir()]
    pip_caches = [path for path in image_root.glob("**/pip/http*") if path.is_dir()]
    assert home_caches == pip_caches == []
    assert not (image_root / "opt/svarstid/bin/pip").exists()
    assert not list(site_packages(image_root).glob("pip"))


def site_packages(image_root: Path) -> Path:
    (found,) = image_root.glob("opt/svarstid/lib/python3.*/site-packages")
    return found


def test_image_holds_svarstid_and_its_dependencies_but_no_test_tools(image_root: Path) -> None:
    installed = {path.name for path in site_packages(image_root).iterdir()}
    assert {"monitor", "aiohttp", "sqlalchemy", "asyncpg", "alembic"} <= installed
    assert sorted(installed & set(TEST_TOOLS)) == []
    programs = {path.name for path in (image_root / "opt/svarstid/bin").iterdir()}
    assert "svarstid" in programs
    assert sorted(programs & set(TEST_TOOLS)) == []


def test_image_stays_within_its_size_budget(
    image: Image, capsys: pytest.CaptureFixture[str]
) -> None:
    size_mb = int(image.podman("image", "inspect", "--format", "{{.Size}}", image.name)) / 1e6
    with capsys.disabled():
        print(f"\nsvarstid image: {size_mb:.0f} MB")
    assert size_mb < SIZE_BUDGET_MB
