"""Metrics adapter: the samples each call produces, on an injected registry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.adapters.metrics import HELP, Metrics
from monitor.domain.model import MessageKind

STOCKHOLM_SUMMER = timezone(timedelta(hours=2))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, version="1.2.3")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def exposed_names(registry: CollectorRegistry) -> dict[str, str]:
    text = generate_latest(registry).decode()
    families = text_string_to_metric_families(text)
    # prometheus-client adds a *_created gauge per counter/histogram, documented like its parent
    return {
        family.name: family.documentation
        for family in families
        if not family.name.endswith("_created")
    }


def family_name(metric: str) -> str:
    return metric.removesuffix("_total")


def test_build_info_is_one_with_version_and_python_labels(registry: CollectorRegistry) -> None:
    Metrics(registry, version="9.9.9")
    samples = [
        sample
        for family in registry.collect()
        if family.name == "svarstid_build_info"
        for sample in family.samples
    ]
    assert len(samples) == 1
    assert samples[0].value == 1
    assert samples[0].labels["version"] == "9.9.9"
    assert samples[0].labels["python"].startswith("3.")


def test_every_metric_is_exposed_with_its_documented_help(metrics: Metrics) -> None:
    exposed = exposed_names(metrics.registry)
    documented = {family_name(name): text for name, text in HELP.items()}
    assert exposed == documented


def test_metrics_never_touch_the_global_registry(metrics: Metrics) -> None:
    metrics.probe_sent("nacka")
    assert REGISTRY.get_sample_value("svarstid_probes_sent_total", {"target": "nacka"}) is None


def test_two_instances_on_separate_registries_do_not_collide() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first, version="a").probe_sent("nacka")
    Metrics(second, version="b")
    assert value(first, "svarstid_probes_sent_total", target="nacka") == 1
    assert value(second, "svarstid_probes_sent_total", target="nacka") is None


def test_probes_sent_are_counted_per_target(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.probe_sent("nacka")
    metrics.probe_sent("nacka")
    metrics.probe_sent("solna")
    assert value(registry, "svarstid_probes_sent_total", target="nacka") == 2
    assert value(registry, "svarstid_probes_sent_total", target="solna") == 1


@pytest.mark.parametrize(("permanent", "label"), [(True, "true"), (False, "false")])
def test_send_failure_carries_permanence_as_true_or_false(
    metrics: Metrics, registry: CollectorRegistry, permanent: bool, label: str
) -> None:
    metrics.probe_send_failed("nacka", permanent)
    name = "svarstid_probe_send_failures_total"
    assert value(registry, name, target="nacka", permanent=label) == 1


def test_uncertain_probes_are_counted_per_target(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.probe_uncertain("nacka")
    assert value(registry, "svarstid_probes_uncertain_total", target="nacka") == 1


def test_bounces_are_counted_per_target_and_permanence(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.probe_bounced("nacka", permanent=True)
    name = "svarstid_probe_bounces_total"
    assert value(registry, name, target="nacka", permanent="true") == 1
    assert value(registry, name, target="nacka", permanent="false") is None


@pytest.mark.parametrize(
    ("kind", "matched", "matched_label"),
    [("human", True, "true"), ("bounce", False, "false"), ("auto_reply", True, "true")],
)
def test_messages_are_counted_by_kind_and_match(
    metrics: Metrics, registry: CollectorRegistry, kind: str, matched: bool, matched_label: str
) -> None:
    metrics.message_processed(kind, matched)
    name = "svarstid_messages_total"
    assert value(registry, name, kind=kind, matched=matched_label) == 1


def test_message_kind_enum_is_exported_as_its_value(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.message_processed(MessageKind.TICKET_RECEIPT, matched=True)
    name = "svarstid_messages_total"
    assert value(registry, name, kind="ticket_receipt", matched="true") == 1


def test_flagged_messages_are_counted(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.message_flagged()
    metrics.message_flagged()
    assert value(registry, "svarstid_messages_flagged_total") == 2


@pytest.mark.parametrize(
    ("working_seconds", "first_bucket_holding_it"),
    [
        (60.0, "300.0"),
        (9 * 3600.0, "32400.0"),  # exactly one working day is still "within one"
        (9 * 3600.0 + 1, "64800.0"),
        (200 * 3600.0, "+Inf"),
    ],
)
def test_working_reply_time_lands_in_the_working_day_buckets(
    metrics: Metrics,
    registry: CollectorRegistry,
    working_seconds: float,
    first_bucket_holding_it: str,
) -> None:
    metrics.reply_measured("nacka", wall_seconds=working_seconds, working_seconds=working_seconds)
    buckets = [
        sample
        for family in registry.collect()
        if family.name == "svarstid_reply_working_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    ]
    first = next(sample for sample in buckets if sample.value == 1)
    assert first.labels["le"] == first_bucket_holding_it
    assert first.labels["target"] == "nacka"


def test_wall_reply_time_buckets_reach_two_weeks(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    monday_morning_after_friday = 65 * 3600.0
    metrics.reply_measured("nacka", wall_seconds=monday_morning_after_friday, working_seconds=60)
    name = "svarstid_reply_seconds_bucket"
    assert value(registry, name, target="nacka", le="172800.0") == 0
    assert value(registry, name, target="nacka", le="259200.0") == 1
    assert value(registry, name, target="nacka", le="1.2096e+06") == 1
    assert value(registry, "svarstid_reply_seconds_sum", target="nacka") == 65 * 3600.0


def test_outstanding_probes_gauge_follows_the_last_count(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_outstanding("nacka", 3)
    metrics.set_outstanding("nacka", 1)
    assert value(registry, "svarstid_probes_outstanding", target="nacka") == 1


def test_thirty_day_window_also_sets_the_issue_two_ratio(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_window_stats("nacka", "Stockholms län", 30, 0.75, 4.5, 8, auto_ack_ratio=0.5)
    labels = {"target": "nacka", "county": "Stockholms län", "window": "30d"}
    assert value(registry, "svarstid_target_within_one_working_day_ratio", **labels) == 0.75
    assert value(registry, "svarstid_target_median_working_seconds", **labels) == 4.5 * 3600
    assert value(registry, "svarstid_target_measured_probes", **labels) == 8
    assert value(registry, "svarstid_target_auto_ack_ratio", **labels) == 0.5
    ratio = "svarstid_answered_within_one_working_day_ratio"
    assert value(registry, ratio, target="nacka") == 0.75


def test_ninety_day_window_leaves_the_thirty_day_ratio_alone(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_window_stats("nacka", "Stockholms län", 30, 0.75, 4.5, 8)
    metrics.set_window_stats("nacka", "Stockholms län", 90, 0.9, 3.0, 20)
    labels = {"target": "nacka", "county": "Stockholms län", "window": "90d"}
    assert value(registry, "svarstid_target_within_one_working_day_ratio", **labels) == 0.9
    ratio = "svarstid_answered_within_one_working_day_ratio"
    assert value(registry, ratio, target="nacka") == 0.75


def test_undefined_figures_remove_their_samples_instead_of_exporting_nan(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_window_stats("nacka", "Stockholms län", 30, 0.75, 4.5, 8, auto_ack_ratio=0.2)
    metrics.set_window_stats("nacka", "Stockholms län", 30, None, None, 0)
    labels = {"target": "nacka", "county": "Stockholms län", "window": "30d"}
    assert value(registry, "svarstid_target_within_one_working_day_ratio", **labels) is None
    assert value(registry, "svarstid_target_median_working_seconds", **labels) is None
    assert value(registry, "svarstid_target_auto_ack_ratio", **labels) is None
    assert value(registry, "svarstid_answered_within_one_working_day_ratio", target="nacka") is None
    assert value(registry, "svarstid_target_measured_probes", **labels) == 0
    assert "NaN" not in generate_latest(registry).decode()


def test_undefined_figures_for_a_new_target_export_nothing(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_window_stats("nacka", "Stockholms län", 90, None, None, 0)
    labels = {"target": "nacka", "county": "Stockholms län", "window": "90d"}
    assert value(registry, "svarstid_target_within_one_working_day_ratio", **labels) is None
    assert value(registry, "svarstid_target_measured_probes", **labels) == 0


def test_target_moved_to_another_county_is_plotted_only_in_the_new_one(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_window_stats("nacka", "Uppsala län", 30, 0.5, 6.0, 4)
    metrics.set_window_stats("nacka", "Stockholms län", 30, 0.75, 4.5, 8)
    ratio = "svarstid_target_within_one_working_day_ratio"
    assert value(registry, ratio, target="nacka", county="Uppsala län", window="30d") is None
    assert value(registry, ratio, target="nacka", county="Stockholms län", window="30d") == 0.75


def test_county_stats_have_their_own_series(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.set_county_stats("Stockholms län", 90, 0.8, 5.0, 40, auto_ack_ratio=0.25)
    labels = {"county": "Stockholms län", "window": "90d"}
    assert value(registry, "svarstid_county_within_one_working_day_ratio", **labels) == 0.8
    assert value(registry, "svarstid_county_median_working_seconds", **labels) == 5 * 3600
    assert value(registry, "svarstid_county_measured_probes", **labels) == 40
    assert value(registry, "svarstid_county_auto_ack_ratio", **labels) == 0.25
    metrics.set_county_stats("Stockholms län", 90, None, None, 0)
    assert value(registry, "svarstid_county_within_one_working_day_ratio", **labels) is None
    assert value(registry, "svarstid_county_median_working_seconds", **labels) is None


@pytest.mark.parametrize("window_days", [0, -30])
def test_window_must_be_a_positive_number_of_days(metrics: Metrics, window_days: int) -> None:
    with pytest.raises(ValueError, match="window_days"):
        metrics.set_county_stats("Stockholms län", window_days, 0.5, 1.0, 3)


@pytest.mark.parametrize(("failing", "expected"), [(True, 1), (False, 0)])
def test_address_failing_is_one_or_zero(
    metrics: Metrics, registry: CollectorRegistry, failing: bool, expected: float
) -> None:
    metrics.set_address_failing("nacka", failing)
    assert value(registry, "svarstid_target_address_failing", target="nacka") == expected


def test_imap_connection_state_is_exported(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.set_imap_connected(True)
    assert value(registry, "svarstid_imap_connected") == 1
    metrics.set_imap_connected(False)
    assert value(registry, "svarstid_imap_connected") == 0


@pytest.mark.parametrize(
    ("record", "name"),
    [
        (Metrics.smtp_succeeded, "svarstid_smtp_last_success_timestamp_seconds"),
        (Metrics.message_ingested, "svarstid_last_message_processed_timestamp_seconds"),
        (Metrics.probe_tick, "svarstid_scheduler_last_run_timestamp_seconds"),
        (Metrics.set_last_probe_sent, "svarstid_last_probe_sent_timestamp_seconds"),
    ],
)
def test_timestamps_are_unix_seconds_of_the_instant_whatever_its_zone(
    metrics: Metrics, registry: CollectorRegistry, record: object, name: str
) -> None:
    at = datetime(2026, 6, 1, 10, 0, tzinfo=STOCKHOLM_SUMMER)
    record(metrics, at)  # type: ignore[operator]
    assert value(registry, name) == datetime(2026, 6, 1, 8, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "record",
    [Metrics.smtp_succeeded, Metrics.message_ingested, Metrics.probe_tick],
)
def test_naive_timestamps_are_rejected(metrics: Metrics, record: object) -> None:
    with pytest.raises(ValueError, match="naive"):
        record(metrics, datetime(2026, 6, 1, 10, 0))  # type: ignore[operator]


def test_smtp_errors_are_counted(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.smtp_failed()
    assert value(registry, "svarstid_smtp_errors_total") == 1


def test_unmatched_messages_gauge_follows_the_holding_pen(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.set_unmatched(7)
    metrics.set_unmatched(2)
    assert value(registry, "svarstid_messages_unmatched") == 2


def test_tracked_target_has_zero_series_before_its_first_probe(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.track_target("nacka")
    assert value(registry, "svarstid_probes_sent_total", target="nacka") == 0
    failures = "svarstid_probe_send_failures_total"
    assert value(registry, failures, target="nacka", permanent="true") == 0
    assert value(registry, failures, target="nacka", permanent="false") == 0
    assert value(registry, "svarstid_probes_outstanding", target="nacka") == 0
    assert value(registry, "svarstid_target_address_failing", target="nacka") == 0


def test_forgotten_target_loses_every_series_and_others_keep_theirs(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    for target in ("nacka", "solna"):
        metrics.track_target(target)
        metrics.probe_sent(target)
        metrics.probe_send_failed(target, permanent=True)
        metrics.probe_uncertain(target)
        metrics.probe_bounced(target, permanent=False)
        metrics.reply_measured(target, 3600.0, 1800.0)
        metrics.set_outstanding(target, 1)
        metrics.set_address_failing(target, True)
        metrics.set_window_stats(target, "Stockholms län", 30, 0.5, 2.0, 4, auto_ack_ratio=0.1)
        metrics.set_window_stats(target, "Stockholms län", 90, 0.6, 2.5, 9)
    metrics.forget_target("nacka")
    text = generate_latest(registry).decode()
    assert 'target="nacka"' not in text
    assert text.count('target="solna"') > 20


def test_forgetting_an_unknown_target_is_harmless(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.probe_sent("solna")
    metrics.forget_target("never-configured")
    assert value(registry, "svarstid_probes_sent_total", target="solna") == 1


def test_exposition_has_no_non_finite_values_for_a_fresh_instance(metrics: Metrics) -> None:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.labels.get("le") != "+Inf":
                assert math.isfinite(sample.value), sample
