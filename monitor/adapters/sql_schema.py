"""Tables of the svarstid database (SQLAlchemy Core).

The Alembic migrations under ``migrations/versions`` must produce exactly this schema; a
test compares them with autogenerate. Change both together.

All instants are stored through ``UtcDateTime``: timezone-aware UTC in, timezone-aware UTC
out, on SQLite (which has no time zones) as on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive values are refused (they are bugs)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored")
        utc = value.astimezone(UTC)
        # SQLite keeps only the wall-clock text: store UTC without an offset so that text
        # order is time order.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Lengths: tokens are 10 chars of base32; RFC 5321 caps an address at 254 usable octets;
# a Message-ID is bounded only by the 998-octet line limit of RFC 5322.
TOKEN = String(16)
ADDRESS = String(320)
MESSAGE_ID = String(998)

targets = Table(
    "targets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("address", ADDRESS, nullable=False),
    Column("kommunkod", String(8), nullable=True),
    Column("county", String(100), nullable=True),
    Column("tags", JSON, nullable=False),
    Column("calendar", String(100), nullable=True),
    Column("paused", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("address_failing", Boolean, nullable=False),
    Column("address_failing_reason", Text, nullable=True),
    Column("address_failing_since", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

probes = Table(
    "probes",
    metadata,
    Column("token", TOKEN, primary_key=True),
    Column("target_id", String(64), ForeignKey("targets.id"), nullable=False),
    Column("target_address", ADDRESS, nullable=False),
    Column("question_id", String(100), nullable=False),
    Column("persona_id", String(100), nullable=False),
    Column("reply_address", ADDRESS, nullable=False),
    Column("message_id", MESSAGE_ID, nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("planned_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("failure_permanent", Boolean, nullable=True),
    Column("failure_detail", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    # A copy of outcomes.state, kept by Store.save_outcome: finding the outstanding probes
    # among a million must not need an anti-join with outcomes (migration 0002).
    Column("outcome_state", String(24), nullable=True),
    Index(None, "target_id", "planned_at"),
    Index(None, "target_id", "sent_at"),
    Index(None, "sent_at"),
    Index(None, "planned_at"),
    Index(None, "state", "outcome_state"),
)

probe_events = Table(
    "probe_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", TOKEN, ForeignKey("probes.token"), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("detail", Text, nullable=True),
)

messages = Table(
    "messages",
    metadata,
    Column("message_key", String(64), primary_key=True),
    Column("message_id", MESSAGE_ID, nullable=True, index=True),
    Column("folder", String(200), nullable=False),
    # IMAP UIDVALIDITY and UID are unsigned 32-bit (RFC 3501): too big for a signed INTEGER.
    Column("uidvalidity", BigInteger, nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column("received_at", UtcDateTime, nullable=False, index=True),
    Column("from_address", ADDRESS, nullable=True),
    Column("subject", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("permanent", Boolean, nullable=True),
    Column("ticket_number", String(200), nullable=True),
    Column("has_new_text", Boolean, nullable=False),
    Column("probe_token", TOKEN, ForeignKey("probes.token"), nullable=True),
    Column("match_method", String(20), nullable=False),
    Column("defects", JSON, nullable=False),
    Column("raw", LargeBinary, nullable=True),
    Column("stored_at", UtcDateTime, nullable=False),
    Index(None, "probe_token", "received_at"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("token", TOKEN, ForeignKey("probes.token"), primary_key=True),
    Column("state", String(24), nullable=False, index=True),
    Column("clock_start", UtcDateTime, nullable=True),
    Column("first_ack_at", UtcDateTime, nullable=True),
    Column("ack_ticket_number", String(200), nullable=True),
    Column("ack_wall_seconds", Float, nullable=True),
    Column("ack_working_seconds", Float, nullable=True),
    Column("first_human_at", UtcDateTime, nullable=True),
    Column("wall_seconds", Float, nullable=True),
    Column("working_seconds", Float, nullable=True),
    Column("within_one_working_day", Boolean, nullable=True),
    Column("within_two_working_days", Boolean, nullable=True),
    Column("bounced", Boolean, nullable=False),
    Column("bounce_permanent", Boolean, nullable=True),
    Column("message_keys", JSON, nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
)

mailbox_checkpoints = Table(
    "mailbox_checkpoints",
    metadata,
    Column("folder", String(200), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", UtcDateTime, nullable=False, index=True),
    Column("last_seen_at", UtcDateTime, nullable=False),
)
