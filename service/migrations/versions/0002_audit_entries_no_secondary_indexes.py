"""audit_entries: drop the unused action and actor indexes

No query reads audit entries by action or actor (lookups go through
audit_subjects), and each index costs every audit append a B-tree insert and
one more page to write and sync at commit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 17:25:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain DROP INDEX on both dialects: no table rebuild, so the audit
    # tables' append-only triggers stay in place.
    op.drop_index(op.f("ix_audit_entries_actor"), table_name="audit_entries")
    op.drop_index(op.f("ix_audit_entries_action"), table_name="audit_entries")


def downgrade() -> None:
    op.create_index(op.f("ix_audit_entries_action"), "audit_entries", ["action"], unique=False)
    op.create_index(op.f("ix_audit_entries_actor"), "audit_entries", ["actor"], unique=False)
