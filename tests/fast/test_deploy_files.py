"""deploy/: the Grafana dashboard, provisioning, alert rules and systemd unit hang together.

promtool itself (PromQL syntax, alert unit tests) runs in tests/integration/test_promtool.py;
these checks need nothing but the files and the Metrics registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.adapters.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "svarstid.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
UNIT = DEPLOY / "systemd" / "svarstid.service"

GRAFANA_GRID_WIDTH = 24
SVARSTID_METRIC = re.compile(r"\bsvarstid_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(svarstid_[a-z0-9_]+)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GRAFANA_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
# labels Prometheus adds at scrape time (job, instance) or that a histogram has (le)
SCRAPE_LABELS = frozenset({"job", "instance", "le"})
# A standby keeps the gauges of its last term (or none): read them from the leader only.
LEADER_FILTER = "and on (instance, job) svarstid_leader == 1"
GAUGES_EVERY_INSTANCE_KEEPS = frozenset({"svarstid_build_info", "svarstid_leader"})

JsonObject = dict[str, Any]


def load_dashboard() -> JsonObject:
    dashboard: JsonObject = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def query_panels(dashboard: JsonObject) -> list[JsonObject]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in query_panels(load_dashboard()) for t in p["targets"]]


def alert_rules() -> list[JsonObject]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def alert_exprs() -> list[str]:
    return [rule["expr"] for rule in alert_rules()]


def populated_registry() -> CollectorRegistry:
    """A registry where every Metrics method has been called, so every series exists."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, version="test")
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    metrics.track_target("nacka")
    metrics.probe_sent("nacka")
    metrics.probe_send_failed("nacka", permanent=True)
    metrics.probe_uncertain("nacka")
    metrics.probe_bounced("nacka", permanent=False)
    metrics.message_processed("human", matched=True)
    metrics.message_flagged()
    metrics.reply_measured("nacka", wall_seconds=7200.0, working_seconds=3600.0)
    metrics.set_outstanding("nacka", 1)
    metrics.set_window_stats("nacka", "Stockholms län", 30, 0.5, 3.0, 4, auto_ack_ratio=0.25)
    metrics.set_county_stats("Stockholms län", 30, 0.5, 3.0, 4, auto_ack_ratio=0.25)
    metrics.set_address_failing("nacka", False)
    metrics.set_imap_connected(True)
    metrics.smtp_succeeded(at)
    metrics.smtp_failed()
    metrics.message_ingested(at)
    metrics.probe_tick(at)
    metrics.set_unmatched(0)
    metrics.set_last_probe_sent(at)
    metrics.set_leader(True)
    return registry


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name the daemon exports, with the label names it carries."""
    series: dict[str, set[str]] = {}
    for family in populated_registry().collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in series.items()}


def test_dashboard_has_the_top_level_fields_grafana_needs() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "svarstid-overview"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert isinstance(dashboard["panels"], list)


def test_every_panel_has_a_unique_id_a_type_and_a_grid_position_inside_the_grid() -> None:
    panels = load_dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert isinstance(panel["id"], int)
        assert panel["type"] in {"row", "stat", "timeseries", "table", "bargauge"}
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys()
        assert grid["x"] + grid["w"] <= GRAFANA_GRID_WIDTH, panel["title"]


def cells(panel: JsonObject) -> Iterator[tuple[int, int]]:
    grid = panel["gridPos"]
    for y in range(grid["y"], grid["y"] + grid["h"]):
        for x in range(grid["x"], grid["x"] + grid["w"]):
            yield x, y


def test_panels_do_not_overlap() -> None:
    owner: dict[tuple[int, int], str] = {}
    for panel in load_dashboard()["panels"]:
        for cell in cells(panel):
            assert cell not in owner, f"{panel['title']!r} overlaps {owner[cell]!r}"
            owner[cell] = panel["title"]


def test_every_query_panel_has_targets_with_expr_and_unique_ref_ids() -> None:
    for panel in query_panels(load_dashboard()):
        targets = panel["targets"]
        assert targets, panel["title"]
        assert all(target["expr"].strip() for target in targets), panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_panel_and_query_uses_the_prometheus_datasource_variable() -> None:
    for panel in query_panels(load_dashboard()):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"


def template_variables() -> dict[str, JsonObject]:
    return {variable["name"]: variable for variable in load_dashboard()["templating"]["list"]}


def test_templating_offers_datasource_window_county_and_target_variables() -> None:
    variables = template_variables()
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    target_query = variables["target"]["query"]["query"]
    assert target_query == "label_values(svarstid_probes_sent_total, target)"
    assert variables["county"]["query"]["query"].startswith("label_values(")
    assert {option["value"] for option in variables["window"]["options"]} == {"30d", "90d"}


def test_every_variable_used_in_a_panel_is_defined_or_built_in() -> None:
    defined = set(template_variables())
    built_in = {"__range", "__rate_interval", "__interval"}
    for expr in dashboard_exprs():
        for name in GRAFANA_VARIABLE.findall(expr):
            assert name in defined | built_in, expr


def test_overview_covers_kkik_share_median_outstanding_bounces_auto_ack_and_health() -> None:
    exprs = "\n".join(dashboard_exprs())
    for metric in (
        "svarstid_target_within_one_working_day_ratio",
        "svarstid_county_within_one_working_day_ratio",
        "svarstid_target_median_working_seconds",
        "svarstid_probes_outstanding",
        "svarstid_probe_bounces_total",
        "svarstid_target_address_failing",
        "svarstid_target_auto_ack_ratio",
        "svarstid_imap_connected",
        "svarstid_smtp_last_success_timestamp_seconds",
        "svarstid_scheduler_last_run_timestamp_seconds",
        "svarstid_messages_unmatched",
        "svarstid_leader",
    ):
        assert metric in exprs


def leader_only_gauges() -> frozenset[str]:
    """Gauges only the leader keeps fresh; counters and histograms of a standby stand still."""
    gauges = {f.name for f in populated_registry().collect() if f.type == "gauge"}
    return frozenset(gauges - GAUGES_EVERY_INSTANCE_KEEPS)


def one_line(expr: str) -> str:
    return " ".join(expr.split())


def test_dashboard_reads_every_leader_only_gauge_through_the_leader_filter() -> None:
    gauges = leader_only_gauges()
    unfiltered = [
        expr
        for expr in map(one_line, dashboard_exprs())
        if gauges & set(SVARSTID_METRIC.findall(expr)) and LEADER_FILTER not in expr
    ]
    assert unfiltered == []


def test_every_alert_on_the_monitors_own_series_reads_only_the_leader() -> None:
    """Only the leader-election alerts look at svarstid_leader of every instance."""
    unfiltered = [
        rule["alert"]
        for rule in alert_rules()
        if set(SVARSTID_METRIC.findall(rule["expr"])) - {"svarstid_leader"}
        and LEADER_FILTER not in one_line(rule["expr"])
    ]
    assert unfiltered == []


def test_drill_down_panels_follow_the_target_variable() -> None:
    titles = [panel["title"] for panel in load_dashboard()["panels"]]
    assert any("$target" in title for title in titles)


@pytest.mark.parametrize("source", ["dashboard", "alerts"], ids=["dashboard", "alerts"])
def test_every_metric_queried_is_exported_by_the_daemon(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    exported = exported_series()
    used = {name for expr in exprs for name in SVARSTID_METRIC.findall(expr)}
    assert used
    assert used <= exported.keys(), sorted(used - exported.keys())


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_label_matched_on_exists_on_that_metric(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else alert_exprs()
    exported = exported_series()
    for expr in exprs:
        for metric, matchers in SELECTOR.findall(expr):
            labels = set(MATCHER_LABEL.findall(matchers))
            assert labels <= exported[metric] | SCRAPE_LABELS, (metric, labels)


def test_grafana_datasource_provisioning_defines_the_prometheus_uid() -> None:
    path = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
    provisioning = load_yaml(path)
    assert provisioning["apiVersion"] == 1
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == template_variables()["DS_PROMETHEUS"]["current"]["value"]
    assert datasource["url"].startswith("http")


def test_grafana_dashboard_provisioning_is_a_file_provider() -> None:
    path = DEPLOY / "grafana" / "provisioning" / "dashboards" / "svarstid.yaml"
    provisioning = load_yaml(path)
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def test_every_alert_has_severity_and_runbook_annotations() -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= annotations.keys(), rule["alert"]
        assert all(text.strip() for text in annotations.values()), rule["alert"]


def test_every_alert_is_unit_tested_both_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for test in load_yaml(ALERTS_TEST)["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts <= firing, sorted(alerts - firing)
    assert alerts <= silent, sorted(alerts - silent)


def test_prometheus_example_scrapes_the_job_the_alerts_expect_and_loads_the_rules() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert "alerts.yml" in config["rule_files"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "svarstid" in jobs
    assert all('job="svarstid"' in expr for expr in alert_exprs() if "up{" in expr)


def unit_directives() -> list[tuple[str, str, str]]:
    directives: list[tuple[str, str, str]] = []
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            directives.append((section, key.strip(), value.strip()))
    return directives


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "svarstid"),
        ("LoadCredential", "smtp-password:/etc/svarstid/smtp-password"),
        ("LoadCredential", "imap-password:/etc/svarstid/imap-password"),
        ("Environment", "SVARSTID_SMTP__PASSWORD_FILE=%d/smtp-password"),
        ("Environment", "SVARSTID_IMAP__PASSWORD_FILE=%d/imap-password"),
        ("ExecStart", "/usr/bin/svarstid run --config /etc/svarstid/svarstid.yaml"),
        ("WatchdogSec", "60"),
        ("Restart", "on-failure"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_systemd_unit_has_service_directive(key: str, value: str) -> None:
    assert ("Service", key, value) in unit_directives()


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found; install systemd to verify the unit")
    # verify insists that ExecStart exists; svarstid is not installed in /usr/bin here.
    stand_in = tmp_path / "svarstid"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8").replace(
        "ExecStart=/usr/bin/svarstid", f"ExecStart={stand_in}"
    )
    unit = tmp_path / "svarstid.service"
    unit.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 even for unknown keys or bad values; it only prints them.
    complaints = [line for line in result.stderr.splitlines() if "svarstid.service" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_promtool_setup_script_is_executable_bash() -> None:
    script = ROOT / "scripts" / "promtool-setup"
    assert script.stat().st_mode & stat.S_IXUSR
    assert script.read_text().startswith("#!/usr/bin/env bash")
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK)
