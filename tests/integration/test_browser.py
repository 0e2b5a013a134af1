"""Headless Chromium loads the demo's status pages: table, chart, timeline, escaping, screenshots.

The demo runs in-process (a short history replay, then live), Chromium runs as a subprocess
with --dump-dom (the DOM after scripts ran) and --screenshot. Screenshots go to
test-output/browser/. Chromium comes from scripts/browser-setup (Debian's `chromium`);
without it the tests skip with a how-to, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from mailservers import installed_by

from monitor.demo.behaviours import LivePace
from monitor.demo.history import LiveResponders
from monitor.demo.replies import human_answer, read_probe
from monitor.demo.world import MAILBOX_USER, DemoRig, prepare

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "browser-setup"
SHOTS = ROOT / "test-output" / "browser"
HOSTILE_SUBJECT = "<script>alert(1)</script> Angående er fråga"
DESKTOP = "1280,1600"
PHONE = "390,844"


@pytest.fixture(scope="module")
def chromium() -> str:
    return installed_by(SETUP, "chromium", package="chromium", timeout=900)


class Demo:
    def __init__(self, rig: DemoRig, url: str, hostile_token: str) -> None:
        self.rig = rig
        self.url = url
        self.hostile_token = hostile_token


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def demo(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    rig = await prepare(history_days=14, token_seed=11, folder=tmp_path_factory.mktemp("demo"))
    rig.clock.go_live()
    responders = LiveResponders(rig.imap, MAILBOX_USER, rig.reactor, LivePace())
    rig.smtp.on_message = responders.on_probe
    url = await rig.app.daemon.start()
    token = await _deliver_hostile_reply(rig)
    yield Demo(rig, url, token)
    await rig.app.daemon.shutdown()
    await responders.stop()
    await rig.stop_servers()


async def _deliver_hostile_reply(rig: DemoRig) -> str:
    """A municipality answers with a subject that is an XSS attempt; the real watcher takes it."""
    sent = [m for m in rig.smtp.messages if "kontaktcenter@lund" in m.rcpt_tos[0]]
    received = read_probe(sent[-1].raw)
    token = received.reply_to.split("+")[1].split("@")[0]
    now = datetime.now(UTC)
    raw = human_answer(
        dataclasses.replace(received, subject=HOSTILE_SUBJECT),
        officer="Eva Lind",
        sender="eva.lind@lund.example.invalid",
        answer="Svar med en elak ämnesrad.",
        at=now,
    )
    await rig.imap.append(MAILBOX_USER, raw, internaldate=now)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not any("alert(1)" in m.subject for m in await rig.app.store.messages_for_probe(token)):
        assert loop.time() < deadline, "the hostile reply was never ingested"
        await asyncio.sleep(0.1)
    return token


async def browse(chromium: str, url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="svarstid-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *extra,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


async def dump_dom(chromium: str, url: str) -> str:
    return await browse(chromium, url, "--dump-dom")


async def screenshot(chromium: str, url: str, name: str, size: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    path.unlink(missing_ok=True)
    await browse(chromium, url, f"--screenshot={path}", f"--window-size={size}")
    assert path.stat().st_size > 10_000, "screenshot is empty"
    return path


async def test_overview_table_lists_every_demo_municipality(chromium: str, demo: Demo) -> None:
    dom = await dump_dom(chromium, f"{demo.url}/")
    assert len(re.findall(r'<tr data-target="', dom)) >= 12
    for name in ("Lund", "Kiruna", "Ljusnarsberg", "Åre", "Västerås"):
        assert f">{name}</a>" in dom
    assert "pill failing" in dom  # the bouncing address
    assert "<svg" in dom and "<rect" in dom  # the weekly chart
    assert 'IMAP: <b class="ok">connected</b>' in dom


async def test_sort_script_runs_under_the_content_security_policy(
    chromium: str, demo: Demo
) -> None:
    dom = await dump_dom(chromium, f"{demo.url}/?sort=share&dir=desc")
    assert 'data-js="sortable"' in dom
    assert 'aria-sort="descending"' in dom


async def test_probe_timeline_shows_the_hostile_subject_as_text(chromium: str, demo: Demo) -> None:
    dom = await dump_dom(chromium, f"{demo.url}/probes/{demo.hostile_token}")
    assert 'id="timeline"' in dom
    assert re.search(r'<li class="sent">', dom) and re.search(r'<li class="human">', dom)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Angående er fråga" in dom
    assert "<script>alert(1)" not in dom
    assert dom.count("<script>") == 1  # only the page's own sorting snippet


async def test_target_page_lists_probes_with_links_to_their_timelines(
    chromium: str, demo: Demo
) -> None:
    dom = await dump_dom(chromium, f"{demo.url}/targets/lund")
    assert f'href="/probes/{demo.hostile_token}"' in dom
    assert "within 1 working day, 30 d" in dom


@pytest.mark.parametrize(
    ("name", "path", "size"),
    [
        ("overview-desktop", "/", DESKTOP),
        ("overview-phone", "/", PHONE),
        ("target-desktop", "/targets/kiruna", DESKTOP),
        ("probe-desktop", "/probes/{token}", DESKTOP),
        ("probe-phone", "/probes/{token}", PHONE),
    ],
)
async def test_screenshots_are_saved(
    chromium: str, demo: Demo, name: str, path: str, size: str
) -> None:
    url = demo.url + path.format(token=demo.hostile_token)
    saved = await screenshot(chromium, url, name, size)
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
