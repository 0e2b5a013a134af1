"""`svarstid report` on a seeded SQLite database, through monitor.cli.main, checked by hand.

The seed and its hand-computed figures are described in report_seed.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from daemon_support import local_config, write_config
from report_seed import TARGETS, seed_database

from monitor.cli import main


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    path = write_config(folder, TARGETS, local_config(folder / "report.db"))
    asyncio.run(seed_database(f"sqlite+aiosqlite:///{folder / 'report.db'}"))
    return path


def run_report(config: Path, tmp_path: Path, *options: str) -> str:
    output = tmp_path / "report.out"
    code = main(["report", *options, "--output", str(output), "--config", str(config)])
    assert code == 0
    return output.read_text(encoding="utf-8")


def report_json(config: Path, tmp_path: Path, *options: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        run_report(config, tmp_path, "--period", "2025-09", "--format", "json", *options)
    )
    return result


def test_report_per_target_matches_hand_computed_figures(config_path: Path, tmp_path: Path) -> None:
    report = report_json(config_path, tmp_path, "--group-by", "target")
    rows = {row["key"]: row for row in report["rows"]}
    assert [row["key"] for row in report["rows"]] == ["malmo", "lund", "stockholm"]
    lund = rows["lund"]
    assert (lund["name"], lund["kommunkod"], lund["county"]) == ("Lund", "1281", "Skåne län")
    assert (lund["probes"], lund["measurable"], lund["bounces"]) == (4, 4, 0)
    assert lund["within_one_working_day"]["successes"] == 2
    assert lund["within_one_working_day"]["total"] == 4
    assert lund["within_one_working_day"]["share"] == 0.5
    # Wilson, p = 0.5, n = 4: centre 0.5, half = 1.96·sqrt(0.0625 + 0.060023)/1.96037 = 0.34998
    assert lund["within_one_working_day"]["low"] == pytest.approx(0.1500, abs=1e-4)
    assert lund["within_one_working_day"]["high"] == pytest.approx(0.8500, abs=1e-4)
    assert lund["answered"]["share"] == 0.75
    assert lund["within_two_working_days"]["share"] == 0.75
    # KM: events 3.5, 8, 18 and one censored far later: S = 3/4, 2/4 (median), 1/4.
    assert lund["median_working_hours"] == 8.0
    assert lund["p90_working_hours"] is None
    assert lund["auto_ack"]["share"] == 0.25
    assert lund["previous"]["within_one_working_day"]["share"] == 1.0
    assert lund["change_pp"] == pytest.approx(-50.0)
    assert (lund["rank"], rows["malmo"]["rank"], rows["stockholm"]["rank"]) == (2, 1, 2)


def test_report_counts_bounces_failed_sends_and_missing_outcomes(
    config_path: Path, tmp_path: Path
) -> None:
    rows = {row["key"]: row for row in report_json(config_path, tmp_path)["rows"]}
    malmo, stockholm = rows["malmo"], rows["stockholm"]
    assert (malmo["probes"], malmo["measurable"], malmo["bounces"]) == (2, 1, 1)
    assert malmo["low_confidence"] is True
    assert malmo["median_working_hours"] == 1.0
    # s2 failed (not measurable); s3 had no stored outcome and is computed: 1 h.
    assert (stockholm["probes"], stockholm["measurable"]) == (3, 2)
    assert stockholm["within_one_working_day"]["successes"] == 1
    assert stockholm["within_one_working_day"]["total"] == 2
    assert stockholm["change_pp"] is None


def test_report_by_county_merges_targets_and_adds_the_total(
    config_path: Path, tmp_path: Path
) -> None:
    report = report_json(config_path, tmp_path, "--group-by", "county")
    rows = {row["key"]: row for row in report["rows"]}
    assert set(rows) == {"Skåne län", "Stockholms län"}
    skane = rows["Skåne län"]
    assert skane["targets"] == 2
    assert (
        skane["within_one_working_day"]["successes"],
        skane["within_one_working_day"]["total"],
    ) == (3, 5)
    # events 1, 3.5, 8, 18 and one censored among 5: S = 4/5, 3/5, 2/5 -> median 8
    assert skane["median_working_hours"] == 8.0
    total = report["total"]
    assert (
        total["within_one_working_day"]["successes"],
        total["within_one_working_day"]["total"],
    ) == (4, 7)
    assert (total["probes"], total["measurable"], total["bounces"]) == (9, 7, 1)
    assert report["period"] == {
        "label": "2025-09",
        "first_day": "2025-09-01",
        "last_day": "2025-09-30",
    }
    assert report["previous_period"]["label"] == "2025-08"


def test_report_by_tag_splits_tagged_targets_from_the_rest(
    config_path: Path, tmp_path: Path
) -> None:
    report = report_json(config_path, tmp_path, "--group-by", "tag:storstad")
    assert {row["key"]: row["targets"] for row in report["rows"]} == {
        "storstad": 1,
        "(not storstad)": 2,
    }


def test_report_csv_has_numbers_and_a_total_line(config_path: Path, tmp_path: Path) -> None:
    text = run_report(config_path, tmp_path, "--period", "2025-09", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["level"] for row in rows] == ["group", "group", "group", "total"]
    lund = next(row for row in rows if row["key"] == "lund")
    assert float(lund["within_one_share"]) == 0.5
    assert lund["p90_working_hours"] == ""
    assert int(lund["decided"]) == 4


def test_report_range_equal_to_the_month_gives_the_same_figures(
    config_path: Path, tmp_path: Path
) -> None:
    by_month = report_json(config_path, tmp_path)["total"]
    text = run_report(
        config_path, tmp_path, "--from", "2025-09-01", "--to", "2025-09-30", "--format", "json"
    )
    by_range = json.loads(text)
    assert by_range["total"]["within_one_working_day"] == by_month["within_one_working_day"]
    assert by_range["previous_period"]["first_day"] == "2025-08-02"


@pytest.mark.parametrize("form", ["table", "markdown", "html"])
def test_report_for_people_names_every_municipality(
    config_path: Path, tmp_path: Path, form: str
) -> None:
    text = run_report(config_path, tmp_path, "--period", "2025-09", "--format", form)
    for name in ("Lund", "Malmö", "Stockholm"):
        assert name in text
    assert "50.0 [15.0–85.0]" in text


def test_html_report_is_self_contained_and_escapes_names(config_path: Path, tmp_path: Path) -> None:
    text = run_report(config_path, tmp_path, "--period", "2025-Q3", "--format", "html")
    assert text.startswith("<!DOCTYPE html>")
    assert "<svg" in text and "<polyline" in text and "<script>" in text
    assert "src=" not in text and "href=" not in text


def test_report_refuses_a_malformed_period(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", "--period", "2025-13", "--config", str(config_path)])
    assert code == 2
    assert "2025-13" in capsys.readouterr().err
