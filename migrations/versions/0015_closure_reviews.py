"""closure reviews: a council's view of a force's closure, and the force's answer

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 08:30:00.000000

One row per closure of an investigation and council told of it: the council's response (agree,
or challenge with a reason) and, for a challenge, the force's answer (reopened, linked to the
status change that reopened it, or upheld with a reason).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import hub.db


revision: str = "0015"
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "closure_review",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("investigation_id", _string(36), nullable=False),
        sa.Column("closing_transition_id", _string(36), nullable=False),
        sa.Column("force_code", _string(32), nullable=False),
        sa.Column("council_code", _string(32), nullable=False),
        sa.Column("closed_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requested_at", hub.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("response", _string(32), nullable=True),
        sa.Column("challenge_reason", _string(32), nullable=True),
        sa.Column("response_text", sa.Text(), nullable=True),
        sa.Column("responded_at", hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("responded_by_client", _string(64), nullable=True),
        sa.Column("response_hash", _string(64), nullable=True),
        sa.Column("answer", _string(32), nullable=True),
        sa.Column("answer_reason", _string(32), nullable=True),
        sa.Column("answer_text", sa.Text(), nullable=True),
        sa.Column("answered_at", hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answer_received_at", hub.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_by_client", _string(64), nullable=True),
        sa.Column("answer_hash", _string(64), nullable=True),
        sa.Column("reopening_transition_id", _string(36), nullable=True),
        sa.ForeignKeyConstraint(
            ["closing_transition_id"],
            ["investigation_transition.id"],
            name=op.f("fk_closure_review_closing_transition_id_investigation_transition"),
        ),
        sa.ForeignKeyConstraint(
            ["council_code"],
            ["organisation.code"],
            name=op.f("fk_closure_review_council_code_organisation"),
        ),
        sa.ForeignKeyConstraint(
            ["force_code"],
            ["organisation.code"],
            name=op.f("fk_closure_review_force_code_organisation"),
        ),
        sa.ForeignKeyConstraint(
            ["investigation_id"],
            ["investigation.id"],
            name=op.f("fk_closure_review_investigation_id_investigation"),
        ),
        sa.ForeignKeyConstraint(
            ["reopening_transition_id"],
            ["investigation_transition.id"],
            name=op.f("fk_closure_review_reopening_transition_id_investigation_transition"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_closure_review")),
        sa.UniqueConstraint(
            "closing_transition_id", "council_code", name=op.f("uq_closure_review_closure_council")
        ),
    )
    with op.batch_alter_table("closure_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_closure_review_council_code"), ["council_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_closure_review_force_code"), ["force_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_closure_review_investigation_id"), ["investigation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_closure_review_closed_at"), ["closed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("closure_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_closure_review_closed_at"))
        batch_op.drop_index(batch_op.f("ix_closure_review_investigation_id"))
        batch_op.drop_index(batch_op.f("ix_closure_review_force_code"))
        batch_op.drop_index(batch_op.f("ix_closure_review_council_code"))

    op.drop_table("closure_review")
