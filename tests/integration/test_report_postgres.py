"""The report's settled counts on PostgreSQL (grouped in SQL) equal SQLite's (grouped in Python).

The seed of the report tests (tests/fast/report_seed.py), written through the Store to both.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

from monitor.adapters.sql import Store
from monitor.domain.periods import parse_period
from monitor.domain.reporting import SettledTargetCounts

pytestmark = pytest.mark.integration
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def _seed_module() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "fast" / "report_seed.py"
    if str(path.parent) not in sys.path:  # its shared helpers, as pytest finds them there
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("svarstid_report_seed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


async def settled(url: str, text: str) -> list[SettledTargetCounts]:
    store = Store.from_url(url)
    period = parse_period(text)
    since, until = period.bounds(STOCKHOLM)
    ends = [month.bounds(STOCKHOLM)[1] for month in period.months()]
    try:
        found = await store.report_settled(since, until, ends)
    finally:
        await store.close()
    return sorted(found, key=lambda counts: counts.target_id)


def normalised(counts: list[SettledTargetCounts]) -> list[tuple[object, ...]]:
    def instants(starts: object) -> list[float]:
        assert isinstance(starts, list | tuple)
        return sorted(s.timestamp() for s in starts if isinstance(s, datetime))

    return [
        (c.target_id, c.probes, c.bounces, c.measurable, c.acknowledged, c.answered,
         c.within_one, c.within_two, list(c.month_decided), list(c.month_within),
         sorted(c.working_seconds), instants(c.clock_starts))
        for c in counts
    ]  # fmt: skip


@pytest.mark.parametrize("period", ["2025-09", "2025-Q3", "2025"])
async def test_postgres_settled_counts_equal_the_sqlite_ones(
    fresh_postgres_url: str, tmp_path: Path, period: str
) -> None:
    seed = _seed_module()
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'same.db'}"
    await seed.seed_database(fresh_postgres_url)
    await seed.seed_database(sqlite_url)
    on_postgres = normalised(await settled(fresh_postgres_url, period))
    assert on_postgres == normalised(await settled(sqlite_url, period))
    assert {row[0] for row in on_postgres} == {"lund", "malmo", "stockholm"}
