"""/-/ready's checks: database, IMAP connection and our SMTP relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.service.health import Health


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'health.db'}")
    await store.upgrade()
    yield store
    await store.close()


@pytest.mark.parametrize(
    ("imap", "relay", "ready"),
    [(True, True, True), (False, True, False), (True, False, False)],
)
async def test_ready_only_with_imap_connected_and_relay_answering(
    store: Store, imap: bool, relay: bool, ready: bool
) -> None:
    health = Health(store, Metrics(CollectorRegistry(), version="t"), relay_ok=lambda: relay)
    health.imap_changed(imap)
    readiness = await health.readiness()
    assert readiness.ready is ready
    assert readiness.checks == {"database": True, "imap": imap, "smtp": relay}


async def test_unreachable_database_is_not_ready(tmp_path: Path) -> None:
    missing = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    health = Health(missing, Metrics(CollectorRegistry(), version="t"))
    health.imap_changed(True)
    readiness = await health.readiness()
    await missing.close()
    assert readiness.ready is False
    assert readiness.checks["database"] is False
