"""The store behaviour tests of tests/fast/test_sql.py, run on a real PostgreSQL.

The test bodies are the SQLite ones, loaded from that file; only the database fixtures
differ: each test gets a database of its own on the throw-away cluster of
tests/integration/conftest.py. SQLite-only tests (``test_sqlite_*``) are left out; the
PostgreSQL-only ones are below.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.adapters.sql import Store

pytestmark = pytest.mark.integration

SQLITE_ONLY_FIXTURES = {"database_url", "empty_database_url", "migrated_sqlite_file"}


def _load_behaviour_tests() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "fast" / "test_sql.py"
    spec = importlib.util.spec_from_file_location("svarstid_store_behaviour", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_behaviour = _load_behaviour_tests()
_shared = {
    name: value
    for name, value in vars(_behaviour).items()
    if (name.startswith("test_") and not name.startswith("test_sqlite_"))
    or (name == "store")  # the fixture that opens a Store on ``database_url``
}
globals().update(_shared)


@pytest.fixture
def database_url(migrated_postgres_url: str) -> str:
    return migrated_postgres_url


@pytest.fixture
def empty_database_url(fresh_postgres_url: str) -> str:
    return fresh_postgres_url


def test_behaviour_tests_were_loaded() -> None:
    # Guards against the loader silently finding nothing after a rename.
    assert len([name for name in _shared if name.startswith("test_")]) >= 40


async def test_postgres_stores_instants_as_timestamptz_in_utc(store: Store) -> None:
    async with store.engine.connect() as conn:
        column_type = (
            await conn.execute(
                text(
                    "SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = 'probes' AND column_name = 'planned_at'"
                )
            )
        ).scalar_one()
    assert column_type == "timestamp with time zone"


async def test_postgres_session_time_zone_does_not_change_what_is_read(
    database_url: str,
) -> None:
    engine = create_async_engine(
        database_url, connect_args={"server_settings": {"timezone": "America/Los_Angeles"}}
    )
    store = Store(engine)
    summer_noon = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    try:
        await store.heartbeat("run-1", summer_noon)
        await store.heartbeat("run-2", summer_noon + timedelta(hours=6))
        gaps = await store.downtime(summer_noon - timedelta(days=1), timedelta(minutes=5))
        assert gaps == [(summer_noon, summer_noon + timedelta(hours=6))]
        assert all(instant.tzinfo == UTC for gap in gaps for instant in gap)
    finally:
        await store.close()
