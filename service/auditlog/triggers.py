"""Database triggers that make the audit tables append-only.

The code never updates or deletes an audit row, but that is not enough: a
bug, a maintenance script or an insider with a SQL prompt could. These
triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) at the
database, for every role but one that drops the triggers first, which is
itself a schema change a reviewer sees. The verifier would catch the edit
anyway; the triggers stop it from happening quietly.

``trigger_ddl(dialect)`` is what the Alembic migration executes; the same
statements are attached to ``create_all`` through DDL events.
"""

from __future__ import annotations

from sqlalchemy import DDL, Table, event

from .models import APPEND_ONLY_TABLES, AuditCheckpoint, AuditEntry, AuditNode, AuditSubject

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'audit log table ' || TG_TABLE_NAME || ' is append-only: '
                  || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END
$body$
""".strip()


def _table_ddl(dialect_name: str, table: str) -> list[str]:
    if dialect_name == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'audit log table {table} is append-only: "
            f"{op} refused'); END"
            for op in ("UPDATE", "DELETE")
        ]
    if dialect_name == "postgresql":
        return [
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
        ]
    raise ValueError(f"no append-only triggers for the {dialect_name!r} dialect")


def trigger_ddl(dialect_name: str) -> list[str]:
    """Every statement that installs the append-only triggers, in order."""
    statements = [_PG_FUNCTION] if dialect_name == "postgresql" else []
    for table in APPEND_ONLY_TABLES:
        statements.extend(_table_ddl(dialect_name, table))
    return statements


def _attach(table: Table) -> None:
    for dialect_name in ("sqlite", "postgresql"):
        statements = _table_ddl(dialect_name, table.name)
        if dialect_name == "postgresql":
            statements = [_PG_FUNCTION, *statements]
        for statement in statements:
            # DDL formats its text with %, so a literal percent would need
            # doubling; the statements above contain none.
            ddl = DDL(statement)  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
            event.listen(table, "after_create", ddl.execute_if(dialect=dialect_name))


for _model in (AuditEntry, AuditSubject, AuditNode, AuditCheckpoint):
    _attach(_model.__table__)  # type: ignore[arg-type]  # a mapped class's Table
