"""Prometheus metrics of svarstid, registered on an injected registry.

The daemon calls the plain methods of :class:`Metrics`; nothing here decides what a
measurement means, it only translates values into samples. Every metric lives on the
registry passed in (never prometheus_client's global one), so tests and several daemons in
one process never share series.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Concatenate, ParamSpec

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR

# One working day is 9 office hours (KKiK); 18 h = two working days, 27 h = three, 45 h = a
# working week, 90 h = two working weeks (the default "unanswered for good" horizon is 10).
WORKING_SECONDS_BUCKETS: tuple[float, ...] = (
    5 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    1 * HOUR,
    2 * HOUR,
    4 * HOUR,
    6 * HOUR,
    9 * HOUR,
    18 * HOUR,
    27 * HOUR,
    45 * HOUR,
    90 * HOUR,
)

# Wall-clock time runs through nights and weekends: a Friday-afternoon question answered on
# Monday morning takes ~65 h, a long Easter or Christmas break closer to a week.
WALL_SECONDS_BUCKETS: tuple[float, ...] = (
    5 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    1 * HOUR,
    2 * HOUR,
    4 * HOUR,
    6 * HOUR,
    9 * HOUR,
    18 * HOUR,
    1 * DAY,
    2 * DAY,
    3 * DAY,
    4 * DAY,
    5 * DAY,
    7 * DAY,
    10 * DAY,
    14 * DAY,
)

HELP: dict[str, str] = {
    "svarstid_build_info": "Always 1; labels carry the svarstid version and the Python version.",
    "svarstid_probes_sent_total": (
        "Probes accepted by the SMTP server (250 after DATA), per target."
    ),
    "svarstid_probe_send_failures_total": (
        "Probes the SMTP server refused, per target; permanent=true for 5xx, false for 4xx."
    ),
    "svarstid_probes_uncertain_total": (
        "Probes whose SMTP session broke after DATA, so delivery is unknown; never resent."
    ),
    "svarstid_probe_bounces_total": (
        "Delivery failure reports (bounces) matched to a probe of the target; "
        "permanent=true for a hard bounce."
    ),
    "svarstid_messages_total": (
        "Incoming messages processed, by classified kind and whether they matched a probe."
    ),
    "svarstid_messages_flagged_total": (
        "Incoming messages that could not be parsed cleanly; stored and flagged, not dropped."
    ),
    "svarstid_reply_seconds": (
        "Wall-clock seconds from probe sent to the first human reply, per target."
    ),
    "svarstid_reply_working_seconds": (
        "Working seconds (office hours on the target's calendar) from probe sent to the first "
        "human reply, per target; 32400 = one working day."
    ),
    "svarstid_probes_outstanding": (
        "Probes sent to the target that are neither answered nor finally unanswered yet."
    ),
    "svarstid_answered_within_one_working_day_ratio": (
        "Share (0-1) of measurable probes of the last 30 days answered by a human within one "
        "working day; unanswered probes count as not answered."
    ),
    "svarstid_target_within_one_working_day_ratio": (
        "Share (0-1) of measurable probes in the rolling window answered by a human within one "
        "working day (KKiK), per target; absent when the window has no measurable probe."
    ),
    "svarstid_target_median_working_seconds": (
        "Median working seconds to the first human reply in the rolling window, per target, "
        "unanswered probes counted as censored; absent when not yet defined."
    ),
    "svarstid_target_measured_probes": (
        "Measurable probes of the target in the rolling window (the n behind its ratios)."
    ),
    "svarstid_target_auto_ack_ratio": (
        "Share (0-1) of measurable probes in the rolling window that got an automatic "
        "acknowledgement (auto-reply or ticket receipt), per target."
    ),
    "svarstid_county_within_one_working_day_ratio": (
        "Share (0-1) of measurable probes in the rolling window answered by a human within one "
        "working day, over all targets of the county."
    ),
    "svarstid_county_median_working_seconds": (
        "Median working seconds to the first human reply in the rolling window over all "
        "targets of the county, unanswered probes counted as censored; absent when not defined."
    ),
    "svarstid_county_measured_probes": (
        "Measurable probes in the rolling window over all targets of the county."
    ),
    "svarstid_county_auto_ack_ratio": (
        "Share (0-1) of measurable probes in the rolling window over all targets of the county "
        "that got an automatic acknowledgement."
    ),
    "svarstid_target_address_failing": (
        "1 while the target's address is failing (permanent refusals or hard bounces), else 0."
    ),
    "svarstid_imap_connected": "1 while the IMAP connection to the monitor's mailbox is up.",
    "svarstid_smtp_last_success_timestamp_seconds": (
        "Unix time of the last probe the SMTP server accepted."
    ),
    "svarstid_smtp_errors_total": (
        "SMTP infrastructure errors of the monitor (connect, TLS, auth, timeout); "
        "a target's refusal is counted in svarstid_probe_send_failures_total instead."
    ),
    "svarstid_last_message_processed_timestamp_seconds": (
        "Unix time when the last incoming message was committed to the database."
    ),
    "svarstid_scheduler_last_run_timestamp_seconds": (
        "Unix time of the last scheduler tick that decided which probes to send."
    ),
    "svarstid_last_probe_sent_timestamp_seconds": (
        "Unix time of the last probe accepted by the SMTP server, any target."
    ),
    "svarstid_messages_unmatched": "Incoming messages currently held as not matched to a probe.",
    "svarstid_leader": (
        "1 while this instance is the leader (sends probes, reads the mailbox), 0 while it "
        "stands by for another instance on the same database."
    ),
}

TARGET_WINDOW_LABELS = ("target", "county", "window")
COUNTY_WINDOW_LABELS = ("county", "window")
NO_COUNTY = ""  # a target without county still gets its series; Prometheus drops empty labels


def _help(name: str) -> str:
    return HELP[name]


def _counter_name(name: str) -> str:
    # prometheus_client appends _total itself and rejects a name that already ends in it twice.
    return name.removesuffix("_total")


def _bool_label(value: bool) -> str:
    return "true" if value else "false"


def _window_label(window_days: int) -> str:
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, got {window_days}")
    return f"{window_days}d"


def _hours_to_seconds(hours: float | None) -> float | None:
    return None if hours is None else hours * HOUR


def _unix_seconds(at: datetime) -> float:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} would be read as local time")
    return at.timestamp()


def _discard(metric: MetricWrapperBase, labels: tuple[str, ...]) -> None:
    # Older prometheus-client releases raise KeyError for a child that was never created.
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def _set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """A value not yet defined is an absent series: NaN would break averages and alerts."""
    if value is None:
        _discard(gauge, labels)
    else:
        gauge.labels(*labels).set(value)


def _remove_matching(
    metric: MetricWrapperBase, label_names: tuple[str, ...], label: str, value: str
) -> None:
    """Remove every child whose ``label`` is ``value``, whatever its other labels are."""
    stale: set[tuple[str, ...]] = set()
    for family in metric.collect():
        for sample in family.samples:
            if sample.labels.get(label) == value:
                stale.add(tuple(sample.labels[name] for name in label_names))
    for labels in stale:
        _discard(metric, labels)


P = ParamSpec("P")


def _changes(
    method: Callable[Concatenate[Metrics, P], None],
) -> Callable[Concatenate[Metrics, P], None]:
    """Marks a method that changes a sample, so a rendered exposition knows it is stale."""

    def changing(self: Metrics, /, *args: P.args, **kwargs: P.kwargs) -> None:
        self._generation += 1
        method(self, *args, **kwargs)

    # Not functools.wraps: mypy cannot type its result through Concatenate.
    changing.__name__, changing.__qualname__ = method.__name__, method.__qualname__
    changing.__doc__ = method.__doc__
    return changing


class Metrics:
    """Every svarstid metric, on one injected registry."""

    def __init__(self, registry: CollectorRegistry, *, version: str) -> None:
        self._registry = registry
        self._generation = 0
        self._build_metrics(registry)
        self._window_series: dict[str, set[tuple[str, str, str]]] = {}
        python = platform.python_version()
        self._build_info.labels(version=version, python=python).set(1)

    @property
    def registry(self) -> CollectorRegistry:
        return self._registry

    @property
    def generation(self) -> int:
        """Grows with every change of a sample; equal values mean an unchanged exposition."""
        return self._generation

    def _gauge(self, name: str, labels: Iterable[str] = ()) -> Gauge:
        return Gauge(name, _help(name), tuple(labels), registry=self._registry)

    def _counter(self, name: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(_counter_name(name), _help(name), tuple(labels), registry=self._registry)

    def _build_metrics(self, registry: CollectorRegistry) -> None:
        self._build_info = self._gauge("svarstid_build_info", ("version", "python"))
        self._build_probe_metrics(registry)
        self._build_window_metrics()
        self._build_health_metrics()

    def _build_probe_metrics(self, registry: CollectorRegistry) -> None:
        self._sent = self._counter("svarstid_probes_sent_total", ("target",))
        self._send_failures = self._counter(
            "svarstid_probe_send_failures_total", ("target", "permanent")
        )
        self._uncertain = self._counter("svarstid_probes_uncertain_total", ("target",))
        self._bounces = self._counter("svarstid_probe_bounces_total", ("target", "permanent"))
        self._messages = self._counter("svarstid_messages_total", ("kind", "matched"))
        self._flagged = self._counter("svarstid_messages_flagged_total")
        self._reply_seconds = Histogram(
            "svarstid_reply_seconds",
            _help("svarstid_reply_seconds"),
            ("target",),
            buckets=WALL_SECONDS_BUCKETS,
            registry=registry,
        )
        self._reply_working_seconds = Histogram(
            "svarstid_reply_working_seconds",
            _help("svarstid_reply_working_seconds"),
            ("target",),
            buckets=WORKING_SECONDS_BUCKETS,
            registry=registry,
        )
        self._outstanding = self._gauge("svarstid_probes_outstanding", ("target",))
        self._address_failing = self._gauge("svarstid_target_address_failing", ("target",))

    def _build_window_metrics(self) -> None:
        self._answered_ratio_30d = self._gauge(
            "svarstid_answered_within_one_working_day_ratio", ("target",)
        )
        self._target_ratio = self._gauge(
            "svarstid_target_within_one_working_day_ratio", TARGET_WINDOW_LABELS
        )
        # Exported in seconds (Prometheus' base unit; promtool rejects "hours"), taken in hours.
        self._target_median = self._gauge(
            "svarstid_target_median_working_seconds", TARGET_WINDOW_LABELS
        )
        self._target_probes = self._gauge("svarstid_target_measured_probes", TARGET_WINDOW_LABELS)
        self._target_auto_ack = self._gauge("svarstid_target_auto_ack_ratio", TARGET_WINDOW_LABELS)
        self._county_ratio = self._gauge(
            "svarstid_county_within_one_working_day_ratio", COUNTY_WINDOW_LABELS
        )
        self._county_median = self._gauge(
            "svarstid_county_median_working_seconds", COUNTY_WINDOW_LABELS
        )
        self._county_probes = self._gauge("svarstid_county_measured_probes", COUNTY_WINDOW_LABELS)
        self._county_auto_ack = self._gauge("svarstid_county_auto_ack_ratio", COUNTY_WINDOW_LABELS)

    def _build_health_metrics(self) -> None:
        self._imap_connected = self._gauge("svarstid_imap_connected")
        self._smtp_last_success = self._gauge("svarstid_smtp_last_success_timestamp_seconds")
        self._smtp_errors = self._counter("svarstid_smtp_errors_total")
        self._last_message = self._gauge("svarstid_last_message_processed_timestamp_seconds")
        self._scheduler_last_run = self._gauge("svarstid_scheduler_last_run_timestamp_seconds")
        self._last_probe_sent = self._gauge("svarstid_last_probe_sent_timestamp_seconds")
        self._unmatched = self._gauge("svarstid_messages_unmatched")
        self._leader = self._gauge("svarstid_leader")

    # -- per target -------------------------------------------------------------------------

    @_changes
    def track_target(self, target: str) -> None:
        """Export zero-valued series for a configured target before its first event.

        Without this, rate() and increase() see a counter appear at its first increment (and
        miss it), and the dashboard's $target list stays empty until the first probe is sent.
        """
        self._sent.labels(target=target)
        self._uncertain.labels(target=target)
        for permanent in (True, False):
            self._send_failures.labels(target=target, permanent=_bool_label(permanent))
            self._bounces.labels(target=target, permanent=_bool_label(permanent))
        self._outstanding.labels(target=target)
        self._address_failing.labels(target=target)

    @_changes
    def probe_sent(self, target: str) -> None:
        self._sent.labels(target=target).inc()

    @_changes
    def probe_send_failed(self, target: str, permanent: bool) -> None:
        self._send_failures.labels(target=target, permanent=_bool_label(permanent)).inc()

    @_changes
    def probe_uncertain(self, target: str) -> None:
        self._uncertain.labels(target=target).inc()

    @_changes
    def probe_bounced(self, target: str, permanent: bool) -> None:
        self._bounces.labels(target=target, permanent=_bool_label(permanent)).inc()

    @_changes
    def reply_measured(self, target: str, wall_seconds: float, working_seconds: float) -> None:
        """Observe the first human reply to one probe (call once per probe)."""
        self._reply_seconds.labels(target=target).observe(wall_seconds)
        self._reply_working_seconds.labels(target=target).observe(working_seconds)

    @_changes
    def set_outstanding(self, target: str, count: int) -> None:
        self._outstanding.labels(target=target).set(count)

    @_changes
    def set_address_failing(self, target: str, failing: bool) -> None:
        self._address_failing.labels(target=target).set(1 if failing else 0)

    @_changes
    def set_window_stats(
        self,
        target: str,
        county: str,
        window_days: int,
        within_one_ratio: float | None,
        median_working_hours: float | None,
        probes: int,
        *,
        auto_ack_ratio: float | None = None,
    ) -> None:
        """Rolling-window figures of one target; a None figure removes its sample."""
        window = _window_label(window_days)
        labels = (target, county or NO_COUNTY, window)
        self._forget_other_counties(target, labels)
        _set_or_remove(self._target_ratio, labels, within_one_ratio)
        _set_or_remove(self._target_median, labels, _hours_to_seconds(median_working_hours))
        _set_or_remove(self._target_auto_ack, labels, auto_ack_ratio)
        self._target_probes.labels(*labels).set(probes)
        if window_days == 30:
            _set_or_remove(self._answered_ratio_30d, (target,), within_one_ratio)

    def _forget_other_counties(self, target: str, labels: tuple[str, str, str]) -> None:
        # A target moved to another county in config must not be plotted in both.
        known = self._window_series.setdefault(target, set())
        for old in [old for old in known if old[2] == labels[2] and old != labels]:
            for gauge in self._target_window_gauges():
                _discard(gauge, old)
            known.discard(old)
        known.add(labels)

    def _target_window_gauges(self) -> tuple[Gauge, ...]:
        return (self._target_ratio, self._target_median, self._target_probes, self._target_auto_ack)

    @_changes
    def set_county_stats(
        self,
        county: str,
        window_days: int,
        within_one_ratio: float | None,
        median_working_hours: float | None,
        probes: int,
        *,
        auto_ack_ratio: float | None = None,
    ) -> None:
        """Rolling-window figures over all targets of one county; None removes a sample."""
        labels = (county, _window_label(window_days))
        _set_or_remove(self._county_ratio, labels, within_one_ratio)
        _set_or_remove(self._county_median, labels, _hours_to_seconds(median_working_hours))
        _set_or_remove(self._county_auto_ack, labels, auto_ack_ratio)
        self._county_probes.labels(*labels).set(probes)

    @_changes
    def forget_target(self, target: str) -> None:
        """Drop every series of a target that left the configuration."""
        target_only: tuple[MetricWrapperBase, ...] = (
            self._sent,
            self._uncertain,
            self._reply_seconds,
            self._reply_working_seconds,
            self._outstanding,
            self._address_failing,
            self._answered_ratio_30d,
        )
        for metric in target_only:
            _discard(metric, (target,))
        for metric in (self._send_failures, self._bounces):
            _remove_matching(metric, ("target", "permanent"), "target", target)
        for gauge in self._target_window_gauges():
            _remove_matching(gauge, TARGET_WINDOW_LABELS, "target", target)
        self._window_series.pop(target, None)

    # -- messages ---------------------------------------------------------------------------

    @_changes
    def message_processed(self, kind: str, matched: bool) -> None:
        self._messages.labels(kind=kind, matched=_bool_label(matched)).inc()

    @_changes
    def message_flagged(self) -> None:
        self._flagged.inc()

    @_changes
    def message_ingested(self, at: datetime) -> None:
        self._last_message.set(_unix_seconds(at))

    @_changes
    def set_unmatched(self, count: int) -> None:
        self._unmatched.set(count)

    # -- monitor health ---------------------------------------------------------------------

    @_changes
    def set_imap_connected(self, connected: bool) -> None:
        self._imap_connected.set(1 if connected else 0)

    @_changes
    def smtp_succeeded(self, at: datetime) -> None:
        self._smtp_last_success.set(_unix_seconds(at))

    @_changes
    def smtp_failed(self) -> None:
        self._smtp_errors.inc()

    @_changes
    def probe_tick(self, at: datetime) -> None:
        self._scheduler_last_run.set(_unix_seconds(at))

    @_changes
    def set_last_probe_sent(self, at: datetime) -> None:
        self._last_probe_sent.set(_unix_seconds(at))

    @_changes
    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)
