"""Initial schema: targets, probes and their events, messages, outcomes, checkpoints, runs.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailbox_checkpoints",
        sa.Column("folder", sa.String(length=200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("folder", name=op.f("pk_mailbox_checkpoints")),
    )
    op.create_table(
        "monitor_runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_monitor_runs")),
    )
    op.create_index(
        op.f("ix_monitor_runs_started_at"), "monitor_runs", ["started_at"], unique=False
    )

    op.create_table(
        "targets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kommunkod", sa.String(length=8), nullable=True),
        sa.Column("county", sa.String(length=100), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("calendar", sa.String(length=100), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("address_failing", sa.Boolean(), nullable=False),
        sa.Column("address_failing_reason", sa.Text(), nullable=True),
        sa.Column("address_failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
    )
    op.create_table(
        "probes",
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("target_address", sa.String(length=320), nullable=False),
        sa.Column("question_id", sa.String(length=100), nullable=False),
        sa.Column("persona_id", sa.String(length=100), nullable=False),
        sa.Column("reply_address", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_permanent", sa.Boolean(), nullable=True),
        sa.Column("failure_detail", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_probes_target_id_targets")
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_probes")),
        sa.UniqueConstraint("message_id", name=op.f("uq_probes_message_id")),
    )
    op.create_index(op.f("ix_probes_planned_at"), "probes", ["planned_at"], unique=False)
    op.create_index(op.f("ix_probes_sent_at"), "probes", ["sent_at"], unique=False)
    op.create_index(op.f("ix_probes_state"), "probes", ["state"], unique=False)
    op.create_index(
        op.f("ix_probes_target_id_planned_at"), "probes", ["target_id", "planned_at"], unique=False
    )

    op.create_table(
        "messages",
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=True),
        sa.Column("folder", sa.String(length=200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=True),
        sa.Column("ticket_number", sa.String(length=200), nullable=True),
        sa.Column("has_new_text", sa.Boolean(), nullable=False),
        sa.Column("probe_token", sa.String(length=16), nullable=True),
        sa.Column("match_method", sa.String(length=20), nullable=False),
        sa.Column("defects", sa.JSON(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["probe_token"], ["probes.token"], name=op.f("fk_messages_probe_token_probes")
        ),
        sa.PrimaryKeyConstraint("message_key", name=op.f("pk_messages")),
    )
    op.create_index(op.f("ix_messages_message_id"), "messages", ["message_id"], unique=False)
    op.create_index(
        op.f("ix_messages_probe_token_received_at"),
        "messages",
        ["probe_token", "received_at"],
        unique=False,
    )
    op.create_index(op.f("ix_messages_received_at"), "messages", ["received_at"], unique=False)

    op.create_table(
        "outcomes",
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("clock_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_ack_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_ticket_number", sa.String(length=200), nullable=True),
        sa.Column("ack_wall_seconds", sa.Float(), nullable=True),
        sa.Column("ack_working_seconds", sa.Float(), nullable=True),
        sa.Column("first_human_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=True),
        sa.Column("working_seconds", sa.Float(), nullable=True),
        sa.Column("within_one_working_day", sa.Boolean(), nullable=True),
        sa.Column("within_two_working_days", sa.Boolean(), nullable=True),
        sa.Column("bounced", sa.Boolean(), nullable=False),
        sa.Column("bounce_permanent", sa.Boolean(), nullable=True),
        sa.Column("message_keys", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token"], ["probes.token"], name=op.f("fk_outcomes_token_probes")),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_outcomes")),
    )
    op.create_index(op.f("ix_outcomes_state"), "outcomes", ["state"], unique=False)

    op.create_table(
        "probe_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["token"], ["probes.token"], name=op.f("fk_probe_events_token_probes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_events")),
    )
    op.create_index(op.f("ix_probe_events_token"), "probe_events", ["token"], unique=False)


def downgrade() -> None:
    for table in (
        "probe_events",
        "outcomes",
        "messages",
        "probes",
        "targets",
        "monitor_runs",
        "mailbox_checkpoints",
    ):
        op.drop_table(table)
