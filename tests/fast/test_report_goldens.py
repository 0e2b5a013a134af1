"""`svarstid report` in every format and grouping, compared with golden files, exact text.

The database is the hand-checked seed of report_seed.py; the report runs through the command
line (``monitor.cli.main``) at a fixed instant, so the text is the same on every run. A golden
holds every header, every row label and the total row; the second half of this file checks the
total row's label in each format explicitly, so that a regenerated golden cannot quietly
bring back a total labelled as a municipality.

To regenerate after an intended change, run this file with UPDATE_GOLDENS=1
and review the diff.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
from datetime import UTC
from html.parser import HTMLParser
from pathlib import Path

import pytest
from daemon_support import local_config, write_config
from report_seed import COMPUTED_AT, TARGETS, seed_database

from monitor import commands
from monitor.cli import main

GOLDENS = Path(__file__).parent / "goldens" / "report"
FORMATS = {"table": "txt", "csv": "csv", "json": "json", "markdown": "md", "html": "html"}
GROUPINGS = ("target", "county", "tag:storstad", "all")
AS_OF = COMPUTED_AT.astimezone(UTC)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("golden")
    path = write_config(folder, TARGETS, local_config(folder / "report.db"))
    asyncio.run(seed_database(f"sqlite+aiosqlite:///{folder / 'report.db'}"))
    return path


def report_text(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str, grouping: str
) -> str:
    monkeypatch.setattr(commands, "utc_now", lambda: AS_OF)
    output = tmp_path / f"report.{FORMATS[form]}"
    argv = ["report", "--period", "2025-09", "--format", form, "--group-by", grouping]
    assert main([*argv, "--output", str(output), "--config", str(config)]) == 0
    return output.read_text(encoding="utf-8")


def golden_path(form: str, grouping: str) -> Path:
    return GOLDENS / f"{grouping.replace(':', '-')}.{FORMATS[form]}"


CASES = [(form, grouping) for grouping in GROUPINGS for form in FORMATS]


@pytest.mark.parametrize(("form", "grouping"), CASES)
def test_report_matches_its_golden_file(
    config_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    grouping: str,
) -> None:
    text = report_text(config_path, tmp_path, monkeypatch, form, grouping)
    golden = golden_path(form, grouping)
    if os.environ.get("UPDATE_GOLDENS") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


# -- the total row, read back from each format ---------------------------------------------

GROUP_LABELS = {
    "target": ["Malmö", "Lund", "Stockholm"],
    "county": ["Skåne län", "Stockholms län"],
    "tag:storstad": ["(not storstad)", "storstad"],
    "all": ["Alla"],
}


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def table_rows(text: str) -> list[list[str]]:
    """The table's data lines (after the header), cut at the header's column starts."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("RANK"))
    starts = [found.start() for found in re.finditer(r"\S+(?: \S+)*", lines[at])]
    body = lines[at + 1 : lines.index("", at)]
    ends = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, ends, strict=True)] for line in body]


def markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[1:]]


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {"tbody": [], "tfoot": []}
        self._part: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.rows:
            self._part = tag
        elif tag == "tr" and self._part is not None:
            self.rows[self._part].append([])
        elif tag == "td" and self._part is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in self.rows:
            self._part = None
        elif tag == "td" and self._cell is not None and self._part is not None:
            self.rows[self._part][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_rows(text: str) -> list[list[str]]:
    cells = _Cells()
    cells.feed(text)
    return [*cells.rows["tbody"], *cells.rows["tfoot"]]


def labelled_rows(form: str, grouping: str, text: str) -> list[tuple[str, str, str]]:
    """(name, kommunkod, county) of every row, the total last; "" where a format has none."""
    if form == "csv":
        return [(row["name"], row["kommunkod"], row["county"]) for row in csv_rows(text)]
    if form == "json":
        record = json.loads(text)
        rows = [*record["rows"], record["total"]]
        return [(row["name"], row["kommunkod"] or "", row["county"] or "") for row in rows]
    cells = {"table": table_rows, "markdown": markdown_rows, "html": html_rows}[form](text)
    if grouping != "target":  # RANK, GROUP, TARGETS: no kommunkod or county column
        return [(row[1], "", "") for row in cells]
    return [(row[1], row[2], row[3]) for row in cells]


@pytest.mark.parametrize(("form", "grouping"), CASES)
def test_total_row_is_labelled_alla_without_a_municipalitys_code_or_county(
    config_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    grouping: str,
) -> None:
    text = report_text(config_path, tmp_path, monkeypatch, form, grouping)
    rows = labelled_rows(form, grouping, text)
    assert [name for name, _code, _county in rows[:-1]] == GROUP_LABELS[grouping]
    name, code, county = rows[-1]
    assert name == "Alla"
    # The members are in two counties: the total has neither a kommunkod nor a county.
    assert (code, county) == ("", "")


@pytest.mark.parametrize("form", ["csv", "json"])
def test_total_row_is_marked_total_for_scripts(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    text = report_text(config_path, tmp_path, monkeypatch, form, "target")
    if form == "csv":
        levels = [(row["level"], row["key"]) for row in csv_rows(text)]
    else:
        record = json.loads(text)
        levels = [(row["level"], row["key"]) for row in [*record["rows"], record["total"]]]
    assert levels[-1] == ("total", "total")
    assert {level for level, _key in levels[:-1]} == {"group"}
