"""The Containerfile, .dockerignore and compose files, checked without a container engine.

What can be checked here is: the instructions of the Containerfile, that what it copies is
in the build context, that its HEALTHCHECK command works against a real HTTP server, that
every file compose mounts exists, that secrets reach svarstid only as files, and that the
configuration compose mounts passes `svarstid check-config` laid out as in the container.
The integration tier builds and runs the image (tests/integration/test_container_image.py)
and has docker-compose check the compose file (tests/integration/test_compose_config.py).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.adapters.http import HttpServer, Readiness

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "a continuation line runs off the end"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in joined]


def arguments(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value)
    return value


def test_image_is_python_3_11_slim_unless_another_base_is_given() -> None:
    assert instructions()[0] == ("ARG", "BASE=python:3.11-slim")
    bases = [args.split()[0] for args in arguments("FROM")]
    assert bases and set(bases) == {"${BASE}"}


def test_image_runs_as_a_non_root_user() -> None:
    users = arguments("USER")
    assert users and users[-1] not in ("root", "0")
    order = [instruction for instruction, _ in instructions()]
    assert order.index("USER") < order.index("ENTRYPOINT")


def test_image_installs_the_wheel_it_builds_from_the_project_with_pip() -> None:
    runs = arguments("RUN")
    assert any(
        re.search(r"\bpip wheel\b.*--wheel-dir /tmp/wheels /src\b", run)
        and re.search(r"\bpip install\b.*/tmp/wheels/svarstid-\*\.whl", run)
        for run in runs
    )


def test_final_stage_takes_only_the_virtual_environment_from_the_build_stage() -> None:
    stages = " ".join(args for instruction, args in instructions() if instruction == "FROM")
    assert "AS build" in stages
    copies = [args for args in arguments("COPY") if args.startswith("--from=")]
    assert copies == ["--from=build /opt/svarstid /opt/svarstid"]


def test_image_exposes_the_metrics_port_and_keeps_state_in_a_volume() -> None:
    assert arguments("EXPOSE") == ["9180"]
    assert arguments("VOLUME") == ["/var/lib/svarstid"]
    assert arguments("WORKDIR")[-1] == "/var/lib/svarstid"


def test_entrypoint_is_svarstid_run_with_the_etc_config() -> None:
    assert exec_form(arguments("ENTRYPOINT")[0]) == ["svarstid"]
    assert exec_form(arguments("CMD")[0]) == ["run", "--config", "/etc/svarstid/svarstid.yaml"]


def healthcheck_command() -> list[str]:
    (healthcheck,) = arguments("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return exec_form(command)


def test_healthcheck_asks_healthy_with_python_not_curl() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2] and "/-/healthy" in command[2]


async def test_healthcheck_command_passes_on_a_live_server_and_fails_without_one() -> None:
    async def never_ready() -> Readiness:
        return Readiness(ready=False)

    server = HttpServer("127.0.0.1:0", CollectorRegistry(), readiness=never_ready)
    url = await server.start()
    port = url.rsplit(":", 1)[1]
    code = healthcheck_command()[2].replace("127.0.0.1:9180", f"127.0.0.1:{port}")
    try:
        # Healthy means alive: a daemon that is not ready (a standby) still passes.
        live = await run_python(code)
    finally:
        await server.stop()
    assert live == 0
    assert await run_python(code) != 0


async def run_python(code: str) -> int:
    """Run ``python -c code`` while this event loop keeps serving HTTP."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; ! re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern[1:] if negate else pattern
        bare = bare.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, bare) or fnmatch.fnmatch(p, bare.replace("**/", ""))
            for p in prefixes
        ):
            result = not negate
    return result


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_everything_the_image_copies_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    for copy in arguments("COPY"):
        if copy.startswith("--from="):
            continue  # from an earlier stage, not from the context
        *sources, _destination = copy.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert not ignored(source, patterns), source
    assert not ignored("monitor/adapters/migrations/versions/0001_initial_schema.py", patterns)
    assert not ignored("monitor/data/kommuner.csv", patterns)


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/config", "svarstid.db", "tests/data/bounces/LICENSE",
     "deploy/secrets/smtp_password", "monitor/__pycache__/cli.cpython-311.pyc"],
)  # fmt: skip
def test_build_context_leaves_out_environments_databases_and_secrets(path: str) -> None:
    assert ignored(path, dockerignore_patterns())


# -- compose --------------------------------------------------------------------------------------


def test_compose_brings_up_svarstid_postgres_prometheus_and_grafana() -> None:
    assert set(SERVICES) == {"svarstid", "postgres", "prometheus", "grafana"}


def test_svarstid_is_built_from_the_containerfile_and_waits_for_a_healthy_database() -> None:
    build = SERVICES["svarstid"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == CONTAINERFILE
    assert SERVICES["svarstid"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["postgres"]


def bind_mounts(service: str) -> list[tuple[Path, str]]:
    mounts = []
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append(((DEPLOY / source).resolve(), target))
    return mounts


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_file_compose_mounts_exists(service: str) -> None:
    for source, _target in bind_mounts(service):
        assert source.exists(), source


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, source


def test_secrets_reach_svarstid_only_as_files_for_its_file_settings() -> None:
    service = SERVICES["svarstid"]
    environment: dict[str, str] = service["environment"]
    assert set(service["secrets"]) <= set(COMPOSE["secrets"])
    for name in environment:
        assert "PASSWORD" not in name or name.endswith("_FILE"), name
    file_settings = {name: value for name, value in environment.items() if name.endswith("_FILE")}
    assert set(file_settings) == {
        "SVARSTID_SMTP__PASSWORD_FILE",
        "SVARSTID_IMAP__PASSWORD_FILE",
        "SVARSTID_DATABASE__PASSWORD_FILE",
    }
    for value in file_settings.values():
        assert value.removeprefix("/run/secrets/") in service["secrets"]
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")


def test_no_secret_file_is_committed() -> None:
    for secret in COMPOSE["secrets"].values():
        assert not (DEPLOY / secret["file"]).exists() or not _tracked(DEPLOY / secret["file"])


def _tracked(path: Path) -> bool:
    found = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path)], cwd=REPO, capture_output=True
    )
    return found.returncode == 0


def test_compose_configuration_passes_check_config_laid_out_as_in_the_container(
    tmp_path: Path,
) -> None:
    root = tmp_path / "container"
    for source, target in bind_mounts("svarstid"):
        destination = root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, destination)
    environment = dict(os.environ)
    for name, value in SERVICES["svarstid"]["environment"].items():
        secret = root / value.lstrip("/")
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("not-a-real-password\n")
        environment[name] = str(secret)
    command = exec_form(arguments("CMD")[0])
    config = root / command[command.index("--config") + 1].lstrip("/")
    checked = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "postgresql+asyncpg://svarstid@postgres:5432/svarstid" in checked.stdout
    assert "not-a-real-password" not in checked.stdout + checked.stderr


def test_compose_configuration_listens_where_the_healthcheck_and_port_reach_it() -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "svarstid.yaml").read_text(encoding="utf-8"))
    assert config["http"]["listen"] == "0.0.0.0:9180"
    assert "127.0.0.1:9180:9180" in SERVICES["svarstid"]["ports"]


def test_prometheus_scrapes_svarstid_on_the_compose_network_with_the_alert_rules() -> None:
    mounts = {target: source for source, target in bind_mounts("prometheus")}
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "svarstid"
    assert job["static_configs"][0]["targets"] == ["svarstid:9180"]
    for rule_file in config["rule_files"]:
        assert mounts[rule_file] == (DEPLOY / "prometheus" / "alerts.yml").resolve()


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/promtool-setup)")
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text(encoding="utf-8"))
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_is_provisioned_with_the_dashboard_and_a_datasource_on_the_network() -> None:
    mounts = {target: source for source, target in bind_mounts("grafana")}
    datasource_file = mounts["/etc/grafana/provisioning/datasources/prometheus.yaml"]
    (datasource,) = yaml.safe_load(datasource_file.read_text(encoding="utf-8"))["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"] == "prometheus"
    providers = mounts["/etc/grafana/provisioning/dashboards"] / "svarstid.yaml"
    (provider,) = yaml.safe_load(providers.read_text(encoding="utf-8"))["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert list(dashboards.glob("*.json")), "the provider's folder holds the dashboard"
