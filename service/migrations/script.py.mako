"""${message}

Revision ID: ${up_revision}
Revises:${" " if down_revision else ""}${down_revision | comma,n}
Create Date: ${create_date}
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
% if not down_revision:
from evidence_intake.service.audit_hook import trigger_ddl
% endif
${imports if imports else ""}
revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
% if not down_revision:
    # The audit log is append-only in the database itself: triggers refuse
    # UPDATE and DELETE on its tables (SQLite and PostgreSQL).
    for statement in trigger_ddl(op.get_bind().dialect.name):
        op.execute(statement)
% endif


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
