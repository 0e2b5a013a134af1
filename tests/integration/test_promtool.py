"""The real promtool checks deploy/prometheus and every PromQL expression of the dashboard.

promtool comes from scripts/promtool-setup (Debian's `prometheus` package). Without it the
tests skip with a how-to, except under CI=true, where a missing promtool is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from asyncio.subprocess import Process
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from mailservers import free_port, installed_by
from prometheus_client import CollectorRegistry, generate_latest

from monitor.adapters.http import HttpServer, Readiness
from monitor.adapters.metrics import Metrics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "svarstid.json"
SETUP = ROOT / "scripts" / "promtool-setup"

# What Grafana puts in place of its variables before it sends a query.
GRAFANA_VARIABLES = {
    "window": "30d",
    "target": ".*",
    "county": ".*",
    "__range": "1d",
    "__rate_interval": "2m",
    "__interval": "30s",
}
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
LEADER_FILTER = "and on (instance, job) svarstid_leader == 1"

JsonObject = dict[str, Any]


@pytest.fixture(scope="module")
def promtool() -> str:
    return installed_by(SETUP, "promtool", package="prometheus", timeout=600)


def run(command: list[str], *, cwd: Path = ROOT, stdin: bytes | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, input=stdin, capture_output=True, timeout=120, check=False
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    return output


def test_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    output = run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output


def test_alert_unit_tests_pass_promtool_test_rules(promtool: str) -> None:
    output = run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS_DIR)
    assert "SUCCESS" in output


def test_example_prometheus_config_passes_promtool_check_config(promtool: str) -> None:
    run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR)


def substitute_grafana_variables(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        return GRAFANA_VARIABLES[match.group(1)]

    return GRAFANA_VARIABLE.sub(value, expr)


def dashboard_queries() -> dict[str, str]:
    """Each panel query with Grafana's variables filled in, keyed by panel id and refId."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return {
        f"panel_{panel['id']}_{target['refId']}": substitute_grafana_variables(target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def dashboard_recording_rules() -> dict[str, object]:
    rules = [
        {"record": f"svarstid_dashboard:{name}", "expr": expr}
        for name, expr in dashboard_queries().items()
    ]
    return {"groups": [{"name": "svarstid-dashboard-panels", "rules": rules}]}


def test_every_dashboard_expression_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = dashboard_recording_rules()
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    output = run([promtool, "check", "rules", str(rule_file)])
    group = rules["groups"][0]  # type: ignore[index]
    assert f"SUCCESS: {len(group['rules'])} rules found" in output


def populate(metrics: Metrics) -> None:
    """Sample data for every metric: two targets in two counties, one address failing."""
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for target, county in (("nacka", "Stockholms län"), ("uppsala", "Uppsala län")):
        metrics.track_target(target)
        metrics.probe_sent(target)
        metrics.probe_send_failed(target, permanent=False)
        metrics.probe_bounced(target, permanent=True)
        metrics.reply_measured(target, wall_seconds=65 * 3600.0, working_seconds=5 * 3600.0)
        metrics.set_window_stats(target, county, 30, 0.8, 5.0, 10, auto_ack_ratio=0.3)
        metrics.set_window_stats(target, county, 90, None, None, 0)
        metrics.set_county_stats(county, 30, 0.8, 5.0, 10, auto_ack_ratio=0.3)
    metrics.probe_uncertain("nacka")
    metrics.message_processed("human", matched=True)
    metrics.message_processed("bulk", matched=False)
    metrics.message_flagged()
    metrics.set_imap_connected(True)
    metrics.smtp_succeeded(at)
    metrics.smtp_failed()
    metrics.message_ingested(at)
    metrics.probe_tick(at)
    metrics.set_unmatched(3)
    metrics.set_last_probe_sent(at)
    metrics.set_address_failing("uppsala", True)
    metrics.set_leader(True)


def populate_stale_standby(metrics: Metrics) -> None:
    """A former leader standing by: its gauges froze at other values than the leader's."""
    populate(metrics)
    for target, county in (("nacka", "Stockholms län"), ("uppsala", "Uppsala län")):
        metrics.set_window_stats(target, county, 30, 0.1, 40.0, 30, auto_ack_ratio=0.9)
        metrics.set_county_stats(county, 30, 0.1, 40.0, 30, auto_ack_ratio=0.9)
        metrics.set_outstanding(target, 7)
        metrics.set_address_failing(target, True)
    metrics.set_imap_connected(False)
    metrics.set_unmatched(50)
    metrics.set_leader(False)


def sample_exposition() -> bytes:
    registry = CollectorRegistry()
    populate(Metrics(registry, version="0.1.0"))
    return generate_latest(registry)


def test_metrics_exposition_passes_promtool_check_metrics(promtool: str) -> None:
    exposition = sample_exposition()
    assert b"svarstid_target_within_one_working_day_ratio{" in exposition
    run([promtool, "check", "metrics"], stdin=exposition)


# -- a real Prometheus scraping a real HttpServer: the dashboard's queries return data --------


async def serve(registry: CollectorRegistry) -> HttpServer:
    async def ready() -> Readiness:
        return Readiness(ready=True, checks={})

    return HttpServer("127.0.0.1:0", registry, readiness=ready)


def address(url: str) -> str:
    return url.removeprefix("http://")


async def start_prometheus(
    binary: str, scrape_urls: list[str], workdir: Path
) -> tuple[Process, str]:
    config = {
        "global": {
            "scrape_interval": "250ms",
            "scrape_timeout": "200ms",
            "evaluation_interval": "1s",
        },
        "scrape_configs": [
            {
                "job_name": "svarstid",
                "static_configs": [{"targets": [address(url) for url in scrape_urls]}],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    listen = f"127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={listen}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return process, f"http://{listen}"


async def query(session: aiohttp.ClientSession, base: str, expr: str) -> JsonObject:
    async with session.post(f"{base}/api/v1/query", data={"query": expr}) as response:
        answer: JsonObject = await response.json()
    return answer


async def wait_for_samples(
    session: aiohttp.ClientSession, base: str, count: int, instances: int
) -> None:
    """Until Prometheus holds ``count`` scrapes of every instance, so rate() has two points."""
    expr = 'count_over_time(up{job="svarstid"}[1m])'
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            result = (await query(session, base, expr)).get("data", {}).get("result", [])
            if len(result) == instances and all(float(r["value"][1]) >= count for r in result):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("Prometheus did not scrape every svarstid instance within 30 s")


@dataclass(frozen=True)
class Scraped:
    """Every dashboard query answered by a real Prometheus scraping a leader and a standby."""

    answers: dict[str, JsonObject]
    leader: str
    standby: str


async def scrape_leader_and_standby(binary: str, workdir: Path) -> Scraped:
    leader, standby = CollectorRegistry(), CollectorRegistry()
    populate(Metrics(leader, version="0.1.0"))
    populate_stale_standby(Metrics(standby, version="0.1.0"))
    servers = [await serve(leader), await serve(standby)]
    try:
        urls = [await server.start() for server in servers]
        process, base = await start_prometheus(binary, urls, workdir)
        try:
            async with aiohttp.ClientSession() as session:
                await wait_for_samples(session, base, 3, instances=len(urls))
                answers = {
                    name: await query(session, base, expr)
                    for name, expr in dashboard_queries().items()
                }
        finally:
            process.terminate()
            await process.wait()
    finally:
        for server in servers:
            await server.stop()
    return Scraped(answers, leader=address(urls[0]), standby=address(urls[1]))


@pytest.fixture(scope="module")
def scraped(promtool: str, tmp_path_factory: pytest.TempPathFactory) -> Scraped:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus server is not installed (scripts/promtool-setup installs it)")
    # One Prometheus run for the module; its own event loop, as the fixture outlives a test's.
    return asyncio.run(scrape_leader_and_standby(binary, tmp_path_factory.mktemp("prometheus")))


def results(answer: JsonObject) -> list[tuple[dict[str, str], float]]:
    return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]


def stat_answer(scraped: Scraped, title: str) -> JsonObject:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    stats = [panel for panel in dashboard["panels"] if panel["type"] == "stat"]
    (panel_id,) = [panel["id"] for panel in stats if panel["title"] == title]
    return scraped.answers[f"panel_{panel_id}_A"]


def test_every_dashboard_query_runs_on_real_prometheus_with_data(scraped: Scraped) -> None:
    answers = scraped.answers
    errors = {name: a.get("error") for name, a in answers.items() if a["status"] != "success"}
    assert errors == {}
    empty = [name for name, a in answers.items() if not a["data"]["result"]]
    assert empty == []


def test_leader_only_dashboard_queries_return_no_series_of_the_standby(scraped: Scraped) -> None:
    leader_only = [name for name, expr in dashboard_queries().items() if LEADER_FILTER in expr]
    assert leader_only
    from_standby = [
        name
        for name in leader_only
        for labels, _ in results(scraped.answers[name])
        if labels.get("instance") == scraped.standby
    ]
    assert from_standby == []


@pytest.mark.parametrize(
    ("title", "value"),
    [
        # the standby's frozen gauges differ: 0.1, 30 probes, 7 outstanding, all failing, 50
        ("Share within one working day, all selected targets ($window)", 0.8),
        ("Measurable probes ($window)", 20.0),
        ("Outstanding probes", 0.0),
        ("Failing addresses", 1.0),
        ("Automatic acknowledgement share ($window)", 0.3),
        ("Median of the county medians ($window)", 5 * 3600.0),
        ("IMAP connected", 1.0),
        ("Unmatched messages", 3.0),
    ],
)
def test_dashboard_figures_are_the_leaders_not_the_standbys(
    scraped: Scraped, title: str, value: float
) -> None:
    ((_, got),) = results(stat_answer(scraped, title))
    assert got == pytest.approx(value)


def test_leader_panel_names_the_leading_instance_only(scraped: Scraped) -> None:
    answer = stat_answer(scraped, "Leader")
    assert [labels["instance"] for labels, _ in results(answer)] == [scraped.leader]
