"""`svarstid report` on a seeded SQLite database, through monitor.cli.main, checked by hand.

The seed (all in Europe/Stockholm, no holidays in August/September 2025; office 08-17):

Lund (1281, Skåne län), 2025-09:
  l1 Mon 09-01 10:00, answer 13:30 the same day            3.5 h  within one
  l2 Tue 09-02 16:00, answer Wed 15:00                     1 + 7 = 8 h  within one
  l3 Wed 09-03 09:00, answer Fri 09:00                     8 + 9 + 1 = 18 h  within two only
  l4 Thu 09-04 10:00, auto-reply 10:01, never answered     final, censored
Lund 2025-08: l0 Mon 08-04 10:00, answer 11:00             1 h (previous period: 1/1)
Malmö (1280, Skåne län), 2025-09:
  m1 Mon 09-08 08:30, answer 09:30                          1 h  within one
  m2 Tue 09-09 10:00, permanent bounce                      not measurable, 1 bounce
Stockholm (0180, Stockholms län), 2025-09:
  s1 Wed 09-10 10:00, answer Fri 09-12 10:00               7 + 9 + 2 = 18 h
  s2 Thu 09-11 10:00, send failed (no outcome stored)      not measurable
  s3 Mon 09-15 10:00, answer 11:00, no outcome stored      computed on the spot: 1 h
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from daemon_support import local_config, write_config

from monitor.adapters.sql import Store
from monitor.cli import main
from monitor.domain.calendar import swedish_default_calendar
from monitor.domain.model import (
    MatchMethod,
    MessageKind,
    ObservedMessage,
    Probe,
    ProbeState,
    StoredMessage,
    Target,
)
from monitor.domain.outcome import compute_outcome

STOCKHOLM = ZoneInfo("Europe/Stockholm")
COMPUTED_AT = datetime(2025, 11, 3, 12, 0, tzinfo=STOCKHOLM)
TARGETS = [
    {"id": "lund", "name": "Lund", "address": "info@lund.example.invalid", "kommunkod": "1281"},
    {"id": "malmo", "name": "Malmö", "address": "info@malmo.example.invalid", "kommunkod": "1280"},
    {
        "id": "stockholm",
        "name": "Stockholm",
        "address": "info@stockholm.example.invalid",
        "kommunkod": "0180",
        "tags": ["storstad"],
    },
]


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=STOCKHOLM)


@dataclass(frozen=True)
class Seed:
    token: str
    target: str
    sent: datetime
    replies: tuple[tuple[datetime, MessageKind], ...] = ()
    failed: bool = False
    store_outcome: bool = True


SEEDS = (
    Seed("l0", "lund", at(8, 4, 10), ((at(8, 4, 11), MessageKind.HUMAN),)),
    Seed("l1", "lund", at(9, 1, 10), ((at(9, 1, 13, 30), MessageKind.HUMAN),)),
    Seed("l2", "lund", at(9, 2, 16), ((at(9, 3, 15), MessageKind.HUMAN),)),
    Seed("l3", "lund", at(9, 3, 9), ((at(9, 5, 9), MessageKind.HUMAN),)),
    Seed("l4", "lund", at(9, 4, 10), ((at(9, 4, 10, 1), MessageKind.AUTO_REPLY),)),
    Seed("m1", "malmo", at(9, 8, 8, 30), ((at(9, 8, 9, 30), MessageKind.HUMAN),)),
    Seed("m2", "malmo", at(9, 9, 10), ((at(9, 9, 10, 2), MessageKind.BOUNCE),)),
    Seed("s1", "stockholm", at(9, 10, 10), ((at(9, 12, 10), MessageKind.HUMAN),)),
    Seed("s2", "stockholm", at(9, 11, 10), failed=True, store_outcome=False),
    Seed(
        "s3",
        "stockholm",
        at(9, 15, 10),
        ((at(9, 15, 11), MessageKind.HUMAN),),
        store_outcome=False,
    ),
)


def probe_of(seed: Seed) -> Probe:
    target = next(t for t in TARGETS if t["id"] == seed.target)
    return Probe(
        token=seed.token,
        target_id=seed.target,
        target_address=str(target["address"]),
        question_id="q1",
        persona_id="p1",
        reply_address=f"svar+{seed.token}@kontroll.example.se",
        message_id=f"<{seed.token}@kontroll.example.se>",
        subject="Fråga om bygglov",
        body="Hej!",
        state=ProbeState.PLANNED,
        planned_at=seed.sent,
    )


def message_of(seed: Seed, index: int, received: datetime, kind: MessageKind) -> StoredMessage:
    return StoredMessage(
        message_key=f"{seed.token}-{index}",
        message_id=f"<{seed.token}-{index}@kommun.example.invalid>",
        folder="INBOX",
        uidvalidity=1,
        uid=100 + index,
        received_at=received,
        from_address="info@kommun.example.invalid",
        subject="Sv: Fråga om bygglov",
        size=100,
        kind=kind,
        permanent=True if kind is MessageKind.BOUNCE else None,
        ticket_number=None,
        has_new_text=kind is MessageKind.HUMAN,
        probe_token=seed.token,
        match_method=MatchMethod.ADDRESS,
    )


async def seed_database(url: str) -> None:
    store = Store.from_url(url)
    await store.upgrade()
    targets = [
        Target(id=str(t["id"]), name=str(t["name"]), address=str(t["address"])) for t in TARGETS
    ]
    await store.sync_targets(targets, COMPUTED_AT)
    for number, seed in enumerate(SEEDS):
        await store_seed(store, seed, number)
    await store.close()


async def store_seed(store: Store, seed: Seed, number: int) -> None:
    await store.insert_probe(probe_of(seed))
    await store.transition_probe(seed.token, ProbeState.SENDING, seed.sent)
    if seed.failed:
        await store.transition_probe(seed.token, ProbeState.FAILED, seed.sent, permanent=False)
        return
    await store.transition_probe(seed.token, ProbeState.SENT, seed.sent, sent_at=seed.sent)
    for index, (received, kind) in enumerate(seed.replies):
        await store.record_message(message_of(seed, number * 10 + index, received, kind), None)
    if seed.store_outcome:
        outcome = compute_outcome(
            token=seed.token,
            sent_at=seed.sent,
            send_failed=False,
            messages=[
                ObservedMessage(
                    message_key=f"{seed.token}-{number * 10 + i}",
                    kind=kind,
                    received_at=received,
                    has_new_text=kind is MessageKind.HUMAN,
                    permanent=True if kind is MessageKind.BOUNCE else None,
                )
                for i, (received, kind) in enumerate(seed.replies)
            ],
            cal=swedish_default_calendar(),
            now=COMPUTED_AT,
        )
        await store.save_outcome(outcome, COMPUTED_AT.astimezone(UTC))


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
