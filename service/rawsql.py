"""Hot-path SQL, compiled once per dialect and run on the DBAPI cursor.

Pushed through ``Connection.execute``, each statement of a request's hot path
(the audit append, a statement's rows) costs more in SQLAlchemy's execution
machinery (cache lookup, execution context, result set-up, events) than
SQLite takes to run it. So such statements are built from the tables once,
compiled once per dialect, and run on the DBAPI cursor of the caller's own
connection: the same connection and the same transaction, begun and ended by
the caller. What SQLAlchemy would still do is done here too:

- parameters go through the column types' bind processors (UTC datetimes,
  enums, booleans), as ``Connection.execute`` would send them;
- database errors are re-raised as the SQLAlchemy exceptions
  ``Connection.execute`` would raise (``IntegrityError``, ``OperationalError``).

- result rows read with :meth:`RawCursor.rows` go through the column types'
  result processors (on SQLite a stored datetime comes back a UTC datetime).

One difference: engine ``echo`` and cursor events do not see these statements.

:meth:`RawCursor.write_and_commit` ends a write transaction. On psycopg its
writes and the COMMIT go to the server as one query (one round trip; see its
docstring for why that matters and how parameters are bound).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NoReturn, Self

from sqlalchemy import ClauseElement, Connection, Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.compiler import SQLCompiler


class Compiled:
    """One statement compiled for one dialect, and how to lay out its parameters."""

    def __init__(self, statement: ClauseElement, dialect: Dialect,
                 keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect,
                                     column_keys=list(keys) if keys is not None else None)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"{statement!r} did not compile to SQL")
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names need escaping in {compiled.string!r}")  # not ours
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError(f"{compiled.string!r} is rendered per execution (expanding IN)")
        self.sql = compiled.string
        # qmark/format styles take a tuple in this order; named styles a dict.
        self.order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        # Values fixed in the statement itself (a LIMIT, a literal in a WHERE).
        self.defaults = {name: bind.value for bind, name in compiled.bind_names.items()
                         if not bind.required and bind.value is not None}
        processors = compiled._bind_processors  # what Connection.execute applies
        self.processors: dict[str, Callable[[Any], Any]] = {
            name: processor for name, processor in processors.items()
            if callable(processor)}
        # A SELECT's (or RETURNING's) columns: their result processors, in order.
        self.columns = tuple(column.keyname for column in compiled._result_columns or ())
        self.result_processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            column.type._cached_result_processor(dialect, None)
            for column in compiled._result_columns or ())

    def params(self, values: Mapping[str, object]) -> Any:
        if self.defaults:
            values = {**self.defaults, **values}
        processors = self.processors
        if processors:
            values = {name: (processors[name](value) if name in processors else value)
                      for name, value in values.items()}
        if self.order is None:
            return values
        return tuple(values[name] for name in self.order)


class StatementSet:
    """A subclass's statements for one dialect, compiled at most once per dialect."""

    _cache: ClassVar[weakref.WeakKeyDictionary[Dialect, StatementSet]]

    def __init_subclass__(cls) -> None:
        cls._cache = weakref.WeakKeyDictionary()

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> Self:
        found = cls._cache.get(dialect)
        if found is None:
            found = cls._cache[dialect] = cls(dialect)
        return found  # type: ignore[return-value]  # the cache holds instances of cls


def query(connection: Connection, statements: StatementSet, statement: Compiled,
          values: Mapping[str, object]) -> list[tuple[Any, ...]]:
    """Run one SELECT of ``statements`` on a cursor of its own; its processed rows."""
    cursor = RawCursor(connection, statements)
    try:
        cursor.execute(statement, values)
        return cursor.rows(statement)
    finally:
        cursor.close()


# A write with its rows (one statement per row; no rows, no statement).
Write = tuple[Compiled, Sequence[Mapping[str, object]]]


class RawCursor:
    """Statements of one :class:`StatementSet` on a connection's DBAPI cursor."""

    def __init__(self, connection: Connection, statements: StatementSet) -> None:
        self.statements = statements
        self.owner = connection
        self.connection = connection.connection.driver_connection
        self.cursor = connection.connection.cursor()

    def _fail(self, err: Exception, sql: str, params: Any) -> NoReturn:
        raise DBAPIError.instance(sql, params, err, self.statements.dbapi_error,
                                  hide_parameters=True, dialect=self.statements.dialect) from err

    def execute(self, statement: Compiled, values: Mapping[str, object]) -> None:
        params = statement.params(values)
        try:
            self.cursor.execute(statement.sql, params)
        except self.statements.dbapi_error as err:
            self._fail(err, statement.sql, params)

    def executemany(self, statement: Compiled, rows: Sequence[Mapping[str, object]]) -> None:
        """All ``rows`` (none: no statement at all)."""
        if not rows:
            return
        if len(rows) == 1:
            # Most lists hold one row; psycopg's executemany costs more round
            # trips than one execute.
            self.execute(statement, rows[0])
            return
        params = [statement.params(values) for values in rows]
        try:
            self.cursor.executemany(statement.sql, params)
        except self.statements.dbapi_error as err:
            self._fail(err, statement.sql, params)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Send the statements inside as one batch where the driver can (psycopg 3).

        In a psycopg pipeline the writes go out together and their results
        come back at one sync: one round trip instead of one per statement.
        Errors surface at the latest when the block ends, as SQLAlchemy's.
        """
        pipeline = getattr(self.connection, "pipeline", None)
        if self.statements.dialect.driver != "psycopg" or pipeline is None:
            yield
            return
        try:
            with pipeline():
                yield
        except self.statements.dbapi_error as err:
            self._fail(err, "pipelined writes", None)

    def write_and_commit(self, writes: Sequence[Write],
                         before_commit: Callable[[], None] | None = None) -> None:
        """Run ``writes`` in order, then commit the connection's transaction.

        ``before_commit`` runs right before the COMMIT may reach the server:
        from then on a failure cannot tell whether the transaction landed
        (:func:`still_uncommitted` can tell, afterwards, when it did not).

        On psycopg the writes and the COMMIT go out as one simple-protocol
        query, one statement per row, with the parameters bound on the client
        by psycopg's own literal quoting (``ClientCursor.mogrify``, libpq's
        escaping). One round trip instead of three (the batch, its sync, the
        COMMIT), and one wake-up of this thread instead of several: the audit
        log's head stays locked from its read to this COMMIT, and each wake-up
        of a Python thread can wait for the GIL behind the process's other
        threads, so fewer of them hold the lock for less time (docs/intake.md,
        "Throughput"). The server runs the statements in order; after
        a failed one it runs none of the rest, the COMMIT included, and the
        transaction stays open and failed. Elsewhere: the writes one by one,
        then ``Connection.commit()``.

        The values are in the query text, so PostgreSQL's own log shows them
        where it logs a failed statement (``log_min_error_statement``): use it
        for rows that hold nothing secret (the statement commit writes ids,
        digests, sizes and routing metadata, all stored in clear anyway).
        """
        if self.statements.dialect.driver != "psycopg":
            for statement, rows in writes:
                self.executemany(statement, rows)
            if before_commit is not None:
                before_commit()
            self.owner.commit()
            return
        import psycopg  # the driver in use, so installed

        raw = self.connection
        if not isinstance(raw, psycopg.Connection):
            raise TypeError(f"psycopg dialect on a {type(raw).__name__} connection")
        quoting = psycopg.ClientCursor(raw)
        try:
            parts = [quoting.mogrify(statement.sql, statement.params(values))
                     for statement, rows in writes for values in rows]
        finally:
            quoting.close()
        parts.append("COMMIT")
        text = ";\n".join(parts)
        if before_commit is not None:
            before_commit()
        try:
            # No parameters: psycopg sends the text as a simple query, which
            # may hold several statements; never prepared (it differs each time).
            raw.execute(text, prepare=False).close()
        except self.statements.dbapi_error as err:
            self._fail(err, "writes and COMMIT", None)
        # The server has committed: this only ends SQLAlchemy's transaction
        # (psycopg sends nothing when no transaction is open).
        self.owner.commit()

    def rows(self, statement: Compiled) -> list[tuple[Any, ...]]:
        """The rows of ``statement`` just executed, with its columns' result processors."""
        rows = self.cursor.fetchall()
        processors = statement.result_processors
        if not any(processors):
            return [tuple(row) for row in rows]
        return [tuple(value if processor is None or value is None else processor(value)
                      for processor, value in zip(processors, row, strict=True))
                for row in rows]

    def one_or_none(self) -> Any:
        # Fetch every row: on SQLite that also finishes the statement.
        rows = self.cursor.fetchall()
        return rows[0] if rows else None

    def close(self) -> None:
        self.cursor.close()


def still_uncommitted(connection: Connection) -> bool:
    """Whether, after a failure, the transaction is known not to have committed.

    True only when the driver says so: on psycopg, the server reported the
    transaction still open (a write failed, so nothing after it ran, the
    COMMIT included; or the COMMIT was never sent). False when the outcome is
    unknown (the connection broke, a COMMIT failed, another driver): callers
    must then assume it may have landed.
    """
    if connection.dialect.driver != "psycopg":
        return False
    import psycopg
    from psycopg.pq import TransactionStatus

    try:
        raw = connection.connection.driver_connection
    except SQLAlchemyError:  # invalidated after a disconnect: unknown
        return False
    if not isinstance(raw, psycopg.Connection):
        return False
    return raw.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)
