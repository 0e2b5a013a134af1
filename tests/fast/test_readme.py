"""The README documents every command, config key and metric the software has."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from monitor.adapters.metrics import Metrics
from monitor.cli import build_parser
from monitor.config import Config

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def metric_names() -> list[str]:
    registry = CollectorRegistry()
    Metrics(registry, version="test")
    names = []
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.append(family.name + suffix)
    return names


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(config_keys(annotation, f"{path}."))
        else:
            keys.append(path)
    return keys


def subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [name for action in actions for name in action.choices]


@pytest.mark.parametrize("name", metric_names())
def test_every_metric_is_documented_in_the_readme(name: str) -> None:
    assert f"`{name}" in README


@pytest.mark.parametrize("key", config_keys(Config))
def test_every_config_key_is_documented_in_the_readme(key: str) -> None:
    assert f"`{key}" in README or f"/ `{key}`" in README


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_is_documented_in_the_readme(command: str) -> None:
    assert f"`svarstid {command}" in README
