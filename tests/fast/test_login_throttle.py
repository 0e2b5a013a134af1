"""The login throttle's policy, on a clock passed in: no waiting."""

from __future__ import annotations

import pytest

from monitor.interfaces.web.throttle import (
    LoginThrottle,
    ThrottlePolicy,
    account_key,
    address_key,
)

POLICY = ThrottlePolicy(free_failures=5, first_delay=2.0, max_delay=60.0, forget_after=900.0)


def after_failures(count: int, at: float = 0.0) -> LoginThrottle:
    throttle = LoginThrottle(POLICY)
    for _ in range(count):
        throttle.failed("k", at)
    return throttle


@pytest.mark.parametrize(
    ("failures", "wait"),
    [
        (0, 0.0),
        (1, 0.0),
        (5, 0.0),
        (6, 2.0),
        (7, 4.0),
        (8, 8.0),
        (10, 32.0),
        (11, 60.0),
        (40, 60.0),
    ],
)
def test_each_failure_beyond_the_free_ones_doubles_the_wait(failures: int, wait: float) -> None:
    assert after_failures(failures).retry_after("k", 0.0) == wait


@pytest.mark.parametrize(("later", "wait"), [(0.5, 1.5), (2.0, 0.0), (3.0, 0.0)])
def test_the_wait_runs_down_with_the_clock(later: float, wait: float) -> None:
    assert after_failures(6).retry_after("k", later) == wait


@pytest.mark.parametrize(
    ("quiet_for", "wait_after_one_more"),
    [
        (100.0, 4.0),  # still remembered: the seventh failure
        (902.1, 0.0),  # forgotten 900 s after the block ended: the first failure again
    ],
)
def test_failures_are_forgotten_after_a_quiet_spell(
    quiet_for: float, wait_after_one_more: float
) -> None:
    throttle = after_failures(6)  # blocked until 2.0
    throttle.failed("k", quiet_for)

    assert throttle.retry_after("k", quiet_for) == wait_after_one_more


def test_a_success_clears_the_account_and_other_keys_keep_their_count() -> None:
    throttle = after_failures(6)
    throttle.failed("other", 0.0)

    throttle.succeeded("k")

    assert throttle.retry_after("k", 0.0) == 0.0
    assert len(throttle) == 1


def test_memory_is_bounded_by_forgetting_the_least_recent_keys() -> None:
    throttle = LoginThrottle(ThrottlePolicy(max_keys=100, free_failures=0))
    for index in range(1_000):
        throttle.failed(f"name{index}", float(index))

    assert len(throttle) == 100
    assert throttle.retry_after("name999", 999.0) > 0
    assert throttle.retry_after("name0", 999.0) == 0.0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("127.0.0.1", "address:127.0.0.1"),
        ("::1", "address:::/64"),
        ("2001:db8:1:2:aaaa::1", "address:2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "address:2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "address:192.0.2.7"),
        (None, "address:unknown"),
    ],
)
def test_clients_are_counted_per_address_and_ipv6_per_network(
    address: str | None, key: str
) -> None:
    assert address_key(address) == key


@pytest.mark.parametrize(("name", "key"), [("anna", "account:anna"), (" Anna ", "account:anna")])
def test_names_are_counted_regardless_of_case(name: str, key: str) -> None:
    assert account_key(name) == key
