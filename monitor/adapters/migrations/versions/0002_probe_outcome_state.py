"""Outstanding probes without an anti-join: probes.outcome_state, per-target send index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

On a million probes, "sent and no outcome yet" scanned every probe. probes.outcome_state
mirrors outcomes.state (written in the same transaction by Store.save_outcome) and the
index (state, outcome_state) finds the few open probes directly; (target_id, sent_at)
serves the per-target status lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("probes", sa.Column("outcome_state", sa.String(length=24), nullable=True))
    op.execute(
        "UPDATE probes SET outcome_state ="
        " (SELECT outcomes.state FROM outcomes WHERE outcomes.token = probes.token)"
    )
    op.drop_index(op.f("ix_probes_state"), table_name="probes")
    op.create_index(
        op.f("ix_probes_state_outcome_state"), "probes", ["state", "outcome_state"], unique=False
    )
    op.create_index(
        op.f("ix_probes_target_id_sent_at"), "probes", ["target_id", "sent_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_probes_target_id_sent_at"), table_name="probes")
    op.drop_index(op.f("ix_probes_state_outcome_state"), table_name="probes")
    op.create_index(op.f("ix_probes_state"), "probes", ["state"], unique=False)
    with op.batch_alter_table("probes") as batch:
        batch.drop_column("outcome_state")
