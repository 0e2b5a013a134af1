"""Time `svarstid report --period <year> --group-by county` over N probes in 290 municipalities.

Seeds a database with N sent probes and their outcomes (bulk Core executemany; seeding is
timed separately), spread over this year up to today, then runs the real command through
monitor.cli.main with a config written to a temporary folder (report_seconds: includes
loading the config and 290 targets, migrations check and rendering), and make_report alone
(report_core_seconds).

Run: python -m bench.bench_report --url sqlite+aiosqlite:///tmp/r.db --probes 1000000
     python -m bench.bench_report --url "$(scripts/pg-tmp start /tmp/pg)" --probes 1000000
The database must be empty (a fresh file or cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from monitor.adapters.sql import Store
from monitor.adapters.sql_schema import outcomes, probes, targets
from monitor.catalog import load_kommuner
from monitor.cli import main
from monitor.composition import load_world
from monitor.config import load_config
from monitor.domain.model import OutcomeState, ProbeState
from monitor.domain.periods import year
from monitor.domain.reporting import parse_grouping
from monitor.service.reporting import ReportRequest, make_report

STOCKHOLM = ZoneInfo("Europe/Stockholm")
CHUNK = 10_000
HOUR = 3600.0


def _working_days(year: int, today: date) -> list[date]:
    day, days = date(year, 1, 1), []
    while day < today:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _outcome(token: str, sent: datetime, now: datetime, rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    row: dict[str, Any] = dict.fromkeys(c.name for c in outcomes.columns) | {
        "token": token,
        "clock_start": sent,
        "first_ack_at": sent + timedelta(minutes=1) if rng.random() < 0.3 else None,
        "bounced": False,
        "message_keys": [],
        "computed_at": now,
    }
    if roll < 0.05:
        return row | {
            "state": OutcomeState.NOT_MEASURABLE.value,
            "clock_start": None,
            "bounced": True,
            "bounce_permanent": True,
        }
    if roll < 0.85:
        hours = rng.expovariate(1 / 8.0)
        return row | {
            "state": OutcomeState.ANSWERED.value,
            "first_human_at": sent + timedelta(hours=hours * 2),
            "wall_seconds": hours * 2 * HOUR,
            "working_seconds": hours * HOUR,
            "within_one_working_day": hours <= 9,
            "within_two_working_days": hours <= 18,
        }
    recent = now - sent < timedelta(days=14)
    return row | {
        "state": (
            OutcomeState.UNANSWERED_SO_FAR if recent else OutcomeState.UNANSWERED_FINAL
        ).value,
        "within_one_working_day": None if recent else False,
        "within_two_working_days": None if recent else False,
    }


def _probe(token: str, target: dict[str, Any], sent: datetime) -> dict[str, Any]:
    return {
        "token": token,
        "target_id": target["id"],
        "target_address": target["address"],
        "question_id": "bygglov-1",
        "persona_id": "anna",
        "reply_address": f"svar+{token}@kontroll.example.se",
        "message_id": f"<{token}@kontroll.example.se>",
        "subject": "Fråga om bygglov",
        "body": "Hej! Behöver jag bygglov för ett plank?",
        "state": ProbeState.SENT.value,
        "planned_at": sent,
        "sent_at": sent,
        "updated_at": sent,
    }


def _targets() -> list[dict[str, Any]]:
    return [
        {
            "id": f"k{kommun.kommunkod}",
            "name": kommun.name,
            "address": f"kontakt@k{kommun.kommunkod}.example.invalid",
            "kommunkod": kommun.kommunkod,
        }
        for kommun in sorted(load_kommuner().values(), key=lambda k: k.kommunkod)
    ]


async def seed(url: str, count: int, now: datetime, seed_value: int = 4) -> None:
    rng = random.Random(seed_value)
    store = Store.from_url(url)
    await store.upgrade()
    listed = _targets()
    kommuner = load_kommuner()
    days = _working_days(now.year, now.astimezone(STOCKHOLM).date())
    async with store.engine.begin() as conn:
        await conn.execute(
            targets.insert(),
            [
                t
                | {
                    "county": kommuner[t["kommunkod"]].county,
                    "tags": [],
                    "calendar": None,
                    "paused": False,
                    "active": True,
                    "address_failing": False,
                    "updated_at": now,
                }
                for t in listed
            ],
        )
    for start in range(0, count, CHUNK):
        probe_rows, outcome_rows = [], []
        for number in range(start, min(count, start + CHUNK)):
            token = f"b{number:09d}"
            day = rng.choice(days)
            minute = rng.randrange(8 * 60, 16 * 60)
            sent = datetime(
                day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=STOCKHOLM
            )
            outcome = _outcome(token, sent, now, rng)
            # save_outcome keeps a copy of the state on the probe (migration 0002).
            probe_rows.append(
                _probe(token, rng.choice(listed), sent) | {"outcome_state": outcome["state"]}
            )
            outcome_rows.append(outcome)
        async with store.engine.begin() as conn:
            await conn.execute(probes.insert(), probe_rows)
            await conn.execute(outcomes.insert(), outcome_rows)
    await store.close()


def _config(folder: Path, url: str) -> Path:
    listed = [{k: t[k] for k in ("id", "name", "address", "kommunkod")} for t in _targets()]
    (folder / "targets.yaml").write_text(yaml.safe_dump({"targets": listed}, allow_unicode=True))
    config = {
        "mailbox": {
            "address": "matning@kontroll.example.se",
            "reply_address": "svar+{token}@kontroll.example.se",
        },
        "smtp": {"host": "127.0.0.1", "port": 2525, "security": "none"},
        "imap": {
            "host": "127.0.0.1",
            "port": 1143,
            "security": "none",
            "username": "u",
            "password": "p",
        },
        "database": {"url": url},
        "targets_file": "targets.yaml",
        "logging": {"level": "warning"},
    }
    path = folder / "svarstid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _report_core(config_path: Path, now: datetime) -> float:
    """Seconds for make_report alone: no imports, config or rendering."""
    config = load_config(config_path, {})
    world = load_world(config)
    store = Store.from_url(config.database.url)
    request = ReportRequest(year(now.astimezone(STOCKHOLM).year), parse_grouping("county"))
    started = time.perf_counter()
    await make_report(store, world, request, now=now)
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed


def run(url: str, probes: int = 1_000_000, *, seeded_already: bool = False) -> dict[str, float]:
    """Seconds to seed ``probes`` probes and to report on them by county."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    if not seeded_already:
        asyncio.run(seed(url, probes, now))
    seeded = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        config = _config(Path(folder), url)
        output = Path(folder) / "report.json"
        code = main(
            [
                "report",
                "--period",
                str(now.astimezone(STOCKHOLM).year),
                "--group-by",
                "county",
                "--format",
                "json",
                "--output",
                str(output),
                "--config",
                str(config),
            ]
        )
        reported = time.perf_counter()
        if code != 0:
            raise RuntimeError(f"svarstid report exited {code}")
        core = asyncio.run(_report_core(config, now))
    return {
        "probes": float(probes),
        "seed_seconds": seeded - started,
        "report_seconds": reported - seeded,
        "report_probes_per_second": probes / (reported - seeded),
        "report_core_seconds": core,
    }


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_report")
    parser.add_argument("--url", required=True, help="an empty database (SQLite or PostgreSQL)")
    parser.add_argument("--probes", type=int, default=1_000_000)
    parser.add_argument("--no-seed", action="store_true", help="report on an earlier seed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _arguments(sys.argv[1:])
    for name, value in run(
        arguments.url, arguments.probes, seeded_already=arguments.no_seed
    ).items():
        print(f"{name:28}{value:14.2f}")
