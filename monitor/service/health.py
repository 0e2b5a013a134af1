"""The monitor's own health: what /-/ready reports and the metrics show."""

from __future__ import annotations

import logging
from collections.abc import Callable

from monitor.adapters.http import Readiness
from monitor.adapters.metrics import Metrics
from monitor.adapters.sql import Store
from monitor.logs import event

log = logging.getLogger(__name__)


class Health:
    def __init__(
        self, store: Store, metrics: Metrics, relay_ok: Callable[[], bool] = lambda: True
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._relay_ok = relay_ok
        self.imap_connected = False

    def imap_changed(self, connected: bool) -> None:
        if connected != self.imap_connected:
            event(log, logging.INFO, "imap connection changed", connected=connected)
        self.imap_connected = connected
        self._metrics.set_imap_connected(connected)

    async def readiness(self) -> Readiness:
        checks = {
            "database": await self._database_ok(),
            "imap": self.imap_connected,
            "smtp": self._relay_ok(),
        }
        return Readiness(ready=all(checks.values()), checks=checks)

    async def _database_ok(self) -> bool:
        try:
            await self._store.ping()
        except Exception:  # an unreachable database is exactly what "not ready" reports
            return False
        return True
