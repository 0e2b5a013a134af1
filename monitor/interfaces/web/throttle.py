"""Login throttling: after a few failures a key (an account, an address) waits, longer each time.

A key that failed more than ``free_failures`` times is blocked for ``first_delay`` seconds,
doubling with every further failure up to ``max_delay``; a blocked attempt is refused
without a password check and changes nothing. A key starts afresh ``forget_after`` seconds
after its last failure or block. At most ``max_keys`` keys are remembered (least recently
failed go first), so a flood of made-up names cannot exhaust memory. Time is passed in
(seconds of a monotonic clock), so the policy is tested without waiting.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 5
    first_delay: float = 2.0
    max_delay: float = 900.0
    forget_after: float = 900.0
    max_keys: int = 10_000


@dataclass
class _Record:
    failures: int
    quiet_from: float  # the last failure, or the end of the block it caused


class LoginThrottle:
    """Failure counts per key under one policy."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self._policy = policy
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        record = self._records.get(key)
        if record is None or record.failures <= self._policy.free_failures:
            return 0.0
        return max(0.0, record.quiet_from - now)

    def failed(self, key: str, now: float) -> None:
        record = self._records.pop(key, None)
        if record is None or now - record.quiet_from > self._policy.forget_after:
            record = _Record(failures=0, quiet_from=now)
        record.failures += 1
        record.quiet_from = now + self._delay(record.failures)
        self._records[key] = record
        while len(self._records) > self._policy.max_keys:
            self._records.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)

    def _delay(self, failures: int) -> float:
        beyond = failures - self._policy.free_failures
        if beyond <= 0:
            return 0.0
        doublings = min(beyond - 1, 64)  # the cap is reached long before; no float overflow
        return min(self._policy.max_delay, self._policy.first_delay * 2.0**doublings)


def account_key(name: str) -> str:
    """Names are unique regardless of case, so ``Anna`` and ``anna`` share one count."""
    return "account:" + name.strip().casefold()


def address_key(address: str | None) -> str:
    """An IPv6 client counts per /64: one host can pick any address in its network."""
    if address is None:
        return "address:unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "address:" + address
    if parsed.version == 6 and parsed.ipv4_mapped is None:
        return "address:" + str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return "address:" + str(getattr(parsed, "ipv4_mapped", None) or parsed)
