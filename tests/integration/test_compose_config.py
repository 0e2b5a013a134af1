"""deploy/compose.yaml checked by docker-compose (Debian's package, the Python Compose 1.29).

`docker-compose config` validates the file against the Compose specification's schema
(unknown keys, types, conditions) and resolves every path against the project directory.
Its schema predates the top-level ``name``: the file is handed over without it and the
name is given as ``--project-name`` instead, which means the same to every compose tool.

Without docker-compose (scripts/integration-setup installs it) the tests skip with a how-to,
except under CI=true, where they fail.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mailservers import in_ci

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        reason = "docker-compose not installed"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: the compose check is required)")
        pytest.skip(f"{reason}. To run it: apt-get install docker-compose")
    return found


def compose_config(tmp_path: Path, compose: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of ``compose`` as if it were deploy/compose.yaml."""
    project = dict(compose)
    name = project.pop("name")
    file = tmp_path / "compose.yaml"
    file.write_text(yaml.safe_dump(project))
    return subprocess.run(
        [docker_compose(), "--project-directory", str(DEPLOY), "--project-name", name,
         "--file", str(file), "config"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def deployed() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def test_docker_compose_accepts_the_compose_file_and_resolves_its_paths(tmp_path: Path) -> None:
    checked = compose_config(tmp_path, deployed())
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(checked.stdout)
    build = resolved["services"]["svarstid"]["build"]
    assert Path(build["context"]) == REPO
    assert (Path(build["context"]) / build["dockerfile"]).is_file()
    for service in resolved["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):
                assert Path(source).exists(), source
    for secret in resolved["secrets"].values():
        assert Path(secret["file"]).parent == DEPLOY / "secrets"


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("svarstid", "stop_grace_perod", "60s"),  # a misspelt key
        ("postgres", "healthcheck", {"retries": "twelve"}),
        ("svarstid", "depends_on", {"postgres": {"condition": "service_happy"}}),
    ],
)
def test_docker_compose_rejects_a_compose_file_with_a_mistake(
    tmp_path: Path, service: str, key: str, value: object
) -> None:
    compose = deployed()
    compose["services"][service][key] = value
    assert compose_config(tmp_path, compose).returncode != 0
