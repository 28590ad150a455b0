"""Audit-log benchmark: appends/s and offline verify throughput.

Prints each figure next to a reference measured in the same run, so the
ratios mean something on any machine:

- appends/s, one writer, SQLite, through the service's own engine and
  sessions (service/db.py: WAL, synchronous=FULL, BEGIN IMMEDIATE), one
  commit per append; target >= 1,000/s. synchronous=NORMAL is shown too, as
  the append's cost without the fsync.
- appends/s, one writer and 8 writer processes, PostgreSQL (skipped without
  --postgres-url / INTAKE_TEST_POSTGRES_URL). A temporary database is created
  and dropped.
- offline verify of an N-entry export (default 1,000,000) against a reference
  loop that only reads the file and SHA-256s each line; targets: <= 3x the
  reference and < 30 s for 1M entries.

    .venv/bin/python bench/audit.py [--entries 1000000] [--appends 3000] [--writers 8]
        [--verify-only | --sqlite-only | --appends-only]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evidence_intake.audit import merkle
from evidence_intake.audit.checkpoint import Checkpoint, sign_checkpoint
from evidence_intake.audit.entry import GENESIS_PREV
from evidence_intake.audit.note import NoteSigner, generate_signer_key
from evidence_intake.audit.verify import checkpoint_line, verify_log

ORIGIN = "bench.intake/audit"
TABLES = ["audit_entries", "audit_subjects", "audit_nodes", "audit_checkpoints", "audit_head"]


def write_log(path: Path, count: int, signer: NoteSigner) -> None:
    """An N-entry export of realistic entries (about 380 bytes each), signed at the end."""
    prev = GENESIS_PREV
    leaves = []
    with path.open("wb") as out:
        for seq in range(count):
            digest = hashlib.sha256(seq.to_bytes(8, "big")).hexdigest()
            line = (
                '{"action":"statement.sealed","actor":"acct_0193a1b2c3","details":{"recipients":'
                '["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs"],'
                f'"sha256":"{digest}","size":{12345 + seq}}},"prev":"{prev}","seq":{seq},'
                f'"subject":{{"statement":"st_{seq:08d}"}},"time":"2026-11-29T14:33:59.123456Z"}}'
            ).encode()
            out.write(line + b"\n")
            prev = hashlib.sha256(line).hexdigest()
            leaves.append(merkle.leaf_hash(line))
        root = merkle.root(merkle.build_levels(leaves), count)
        out.write(checkpoint_line(sign_checkpoint(Checkpoint(ORIGIN, count, root), signer)))


def reference(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            hashlib.sha256(line).digest()
    return time.perf_counter() - start


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the verify workers)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _peak_rss_mb() -> float:
    """Peak RSS of this process since it started its program.

    VmHWM, not ru_maxrss: a spawned child is forked from the benchmark, and
    Linux carries the parent's peak over into ru_maxrss across exec.
    """
    import resource

    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(status.split("VmHWM:", 1)[1].split()[0]) / 1024


def _verify_in_child(path: str, vkey: str, workers: int, results: Any) -> None:
    """verify_log in a fresh process: its wall time, verdict and peak RSS."""
    from evidence_intake.audit.errors import AuditError
    from evidence_intake.audit.note import parse_vkey

    start = time.perf_counter()
    try:
        verdict = f"verified {verify_log(Path(path), parse_vkey(vkey), workers=workers).size:,}"
    except AuditError as err:
        verdict = f"{type(err).__name__} at line {getattr(err, 'line', None)}"
    took = time.perf_counter() - start
    results.put((took, verdict, _peak_rss_mb()))


def _child_verify(path: Path, vkey: str, workers: int) -> tuple[float, str, float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_verify_in_child, args=(str(path), vkey, workers, results))
    child.start()
    out: tuple[float, str, float] = results.get(timeout=600)
    child.join()
    return out


def bench_verify_failing(path: Path, count: int, vkey: str) -> None:
    """A log with one entry edited in the middle: the verifier must name it (diagnosis)."""
    with path.open("r+b") as handle:
        data = handle.read()
        start = 0
        for _ in range(count // 2):
            start = data.index(b"\n", start) + 1
        actor = data.index(b'"actor":"', start) + len(b'"actor":"')
        handle.seek(actor)
        handle.write(b"X")  # same length: the entry is modified, the chain breaks after it
    del data
    took, verdict, rss = _child_verify(path, vkey, 1)
    print(f"verify  failing log ({count:,} entries, entry {count // 2:,} edited), one process: "
          f"{took:.2f} s, {verdict}; peak RSS {rss:.0f} MB")


def bench_verify(count: int) -> None:
    signer = NoteSigner(generate_signer_key(ORIGIN)[0])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.jsonl"
        t0 = time.perf_counter()
        write_log(path, count, signer)
        print(f"generated {count:,} entries ({path.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s")
        cpu = _cpu_seconds()
        ref = reference(path)
        ref_cpu, cpu = _cpu_seconds() - cpu, _cpu_seconds()
        start = time.perf_counter()
        result = verify_log(path, signer.verifier, workers=os.cpu_count() or 1)
        took = time.perf_counter() - start
        took_cpu, cpu = _cpu_seconds() - cpu, _cpu_seconds()
        start = time.perf_counter()
        verify_log(path, signer.verifier, workers=1)
        serial = time.perf_counter() - start
        serial_cpu = _cpu_seconds() - cpu
        if result.size != count:
            raise SystemExit("verification returned the wrong size")
        print(f"verify  {count:,} entries, {os.cpu_count()} workers: {took:.2f} s "
              f"({count / took:,.0f} entries/s); one process: {serial:.2f} s; reference "
              f"read+SHA-256 loop {ref:.2f} s; ratio {took / ref:.2f}x (one process "
              f"{serial / ref:.2f}x; target <= 3x, < 30 s for 1M)")
        print(f"verify  CPU seconds (this process and its workers; steadier than wall time on "
              f"a shared machine): reference {ref_cpu:.2f}, {os.cpu_count()} workers "
              f"{took_cpu:.2f}, one process {serial_cpu:.2f} ({serial_cpu / ref_cpu:.2f}x)")
        _, _, rss = _child_verify(path, signer.verifier.vkey, 1)
        print(f"verify  peak RSS of one verifying process: {rss:.0f} MB")
        bench_verify_failing(path, count, signer.verifier.vkey)


def _service_database(url: str, synchronous: str = "FULL"):  # type: ignore[no-untyped-def]
    """The service's own engine and session factory (service/db.py) for ``url``.

    On SQLite that is WAL, synchronous=FULL, busy_timeout and BEGIN IMMEDIATE
    per write transaction; any other ``synchronous`` is set after the
    service's pragmas, for comparison only.
    """
    from evidence_intake.service.db import Database
    from evidence_intake.service.settings import Settings
    from sqlalchemy import event

    database = Database.from_settings(Settings(data_dir=Path(tempfile.gettempdir()),
                                               database_url=url))
    if synchronous != "FULL":

        @event.listens_for(database.engine, "connect")
        def _override(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute(f"PRAGMA synchronous={synchronous}")

    return database


def _appends(database, count: int, writer: int = 0) -> None:  # type: ignore[no-untyped-def]
    """One business transaction per append, opened as the service opens them."""
    from evidence_intake.service import auditlog

    for i in range(count):
        with database.session() as session:
            auditlog.append(session, actor=f"acct_{writer}", action="statement.sealed",
                            subject={"statement": f"st_{writer}_{i}"},
                            details={"size": i, "sha256": "ab" * 32})
            session.commit()


def _create(engine) -> None:  # type: ignore[no-untyped-def]
    from evidence_intake.service.models.base import Base

    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in TABLES])


def _reference_inserts(engine, count: int) -> float:  # type: ignore[no-untyped-def]
    """One plain INSERT + commit per row in a scratch table: the storage floor."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_ref (id INTEGER PRIMARY KEY, data TEXT)"))
    start = time.perf_counter()
    for i in range(count):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_ref VALUES (:i, :d)"), {"i": i, "d": "x" * 300})
    return time.perf_counter() - start


def bench_sqlite(count: int) -> None:
    # FULL fsyncs every commit (the service's setting: a committed entry
    # survives a power cut); NORMAL in WAL mode survives a crash of the
    # process but not of the machine, and shows the CPU cost of an append.
    for synchronous in ("FULL", "NORMAL"):
        with tempfile.TemporaryDirectory() as tmp:
            database = _service_database(f"sqlite:///{Path(tmp) / 'bench.db'}", synchronous)
            _create(database.engine)
            cpu = time.process_time()
            floor = _reference_inserts(database.engine, count)
            floor_cpu, cpu = time.process_time() - cpu, time.process_time()
            start = time.perf_counter()
            _appends(database, count)
            took = time.perf_counter() - start
            took_cpu = time.process_time() - cpu
            database.dispose()
        print(f"SQLite  1 writer, synchronous={synchronous}: {count / took:,.0f} appends/s "
              f"({count:,} commits); plain one-row insert+commit reference "
              f"{count / floor:,.0f}/s (target >= 1,000 appends/s)")
        # CPU per commit is steadier than wall time on a shared machine,
        # where the wall time of a FULL commit is mostly the disk's fsync.
        print(f"SQLite  CPU per commit, synchronous={synchronous}: append "
              f"{took_cpu / count * 1e6:,.0f} us, reference insert "
              f"{floor_cpu / count * 1e6:,.0f} us")


def _pg_writer(url: str, writer: int, count: int, barrier: Any) -> None:
    from sqlalchemy import text

    database = _service_database(url)
    with database.engine.connect() as conn:  # connect and import before the clock starts
        conn.execute(text("SELECT 1"))
    barrier.wait()
    _appends(database, count, writer)
    database.dispose()


def bench_postgres(url: str, count: int, writers: int) -> None:
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"intake_bench_audit_{secrets.token_hex(4)}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = f"{url.rsplit('/', 1)[0]}/{name}"
    try:
        database = _service_database(db_url)
        _create(database.engine)
        floor = _reference_inserts(database.engine, count)
        start = time.perf_counter()
        _appends(database, count)
        single = time.perf_counter() - start
        database.dispose()
        per_writer = max(1, count // writers)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(writers + 1)
        processes = [context.Process(target=_pg_writer, args=(db_url, n + 1, per_writer,
                                                               barrier))
                     for n in range(writers)]
        for process in processes:
            process.start()
        barrier.wait(timeout=300)
        start = time.perf_counter()
        for process in processes:
            process.join()
        many = time.perf_counter() - start
        if any(p.exitcode != 0 for p in processes):
            raise SystemExit("a PostgreSQL writer failed")
        print(f"Postgres 1 writer: {count / single:,.0f} appends/s; plain one-row "
              f"insert+commit reference {count / floor:,.0f}/s")
        print(f"Postgres {writers} writers: {writers * per_writer / many:,.0f} appends/s in "
              f"total ({writers} x {per_writer:,} commits, timed after every writer connected)")
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--postgres-url", default=os.environ.get("INTAKE_TEST_POSTGRES_URL"))
    parser.add_argument("--verify-only", action="store_true",
                        help="skip the append benchmarks (SQLite, PostgreSQL)")
    parser.add_argument("--sqlite-only", action="store_true",
                        help="run only the SQLite append benchmark")
    parser.add_argument("--appends-only", action="store_true",
                        help="skip the offline verify benchmark (SQLite and PostgreSQL only)")
    args = parser.parse_args()
    if args.verify_only and (args.sqlite_only or args.appends_only):
        parser.error("--verify-only excludes --sqlite-only and --appends-only")
    print(f"audit benchmark on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.verify_only:
        bench_sqlite(args.appends)
        if args.sqlite_only:
            pass
        elif args.postgres_url:
            bench_postgres(args.postgres_url, args.appends, args.writers)
        else:
            print("Postgres: skipped (no --postgres-url or INTAKE_TEST_POSTGRES_URL)")
    if not (args.sqlite_only or args.appends_only):
        bench_verify(args.entries)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
