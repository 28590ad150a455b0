"""Intake benchmarks, each as a ratio to a reference measured in the same run.

1. One 512 MiB attachment uploaded with ``intake submit`` over HTTP on loopback
   to ``intake serve`` (one worker), against Debian ``age`` sealing the same file
   locally. Target: time ratio <= 2. Also the server's peak RSS growth during
   the upload (VmHWM after minus VmRSS before). Target: < 64 MiB. Also printed:
   CPU seconds of ``intake submit``, the server and ``age`` (user + system), which
   say more than wall time when other work shares the machine's two cores.
2. Small statements (5 KiB text) per second, 16 concurrent clients, 2 uvicorn
   workers, on SQLite and on PostgreSQL, against a bare FastAPI endpoint (same
   engine settings, same request size, same client) that inserts one row; the
   two servers take turns in 4 alternating rounds of 300 requests each (a
   longer sample than the 100 per round of earlier runs: a round's start, with
   its new connections, weighed on short rounds). Target: >= 0.5. Also
   printed: CPU per request of each server, of the client and of PostgreSQL.

    .venv/bin/python bench/intake.py                 # everything
    .venv/bin/python bench/intake.py --size-mib 128  # a smaller upload
    .venv/bin/python bench/intake.py --skip-small    # only the upload
    .venv/bin/python bench/intake.py --skip-upload --backend postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
BIN = Path(sys.executable).parent / "intake"
POSTGRES = os.environ.get("INTAKE_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")

from intake_samples import multipart, record, record_bytes  # noqa: E402 - after sys.path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its living children (uvicorn's workers)."""
    total = 0.0
    for child in [pid, *_children_of(pid)]:
        with contextlib.suppress(FileNotFoundError):
            total += _cpu_seconds(child)
    return total


def _children_of(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children.extend(int(c) for c in text)
    return children


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on this machine (0 if none can be read)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in {"postgres", "postmaster"}:
                continue
            total += _cpu_seconds(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


class Node:
    """A data directory made by ``intake init``, a counsellor token and one X25519 body."""

    def __init__(self, root: Path, database_url: str | None = None) -> None:
        self.data = root / "var"
        self.env = {**os.environ, "INTAKE_DATA_DIR": str(self.data),
                    "INTAKE_COOKIE_SECURE": "false", "INTAKE_LOG_LEVEL": "warning",
                    "INTAKE_MAX_REQUEST_BYTES": str(4 << 30),
                    "INTAKE_MAX_ATTACHMENT_BYTES": str(2 << 30)}
        self.env.pop("INTAKE_DATABASE_URL", None)
        if database_url:
            self.env["INTAKE_DATABASE_URL"] = database_url
        subprocess.run([str(BIN), "init", "--data-dir", str(self.data)], env=self.env,
                       check=True, capture_output=True)
        self.token, self.body_id, self.recipient = self._accounts(database_url)

    def _accounts(self, database_url: str | None) -> tuple[str, str, str]:
        from evidence_intake.crypto.age import X25519Identity
        from evidence_intake.service.auth.accounts import create_account, create_api_token
        from evidence_intake.service.db import Database
        from evidence_intake.service.models.accounts import Role
        from evidence_intake.service.recipient_sets import add_recipient, create_body
        from evidence_intake.service.settings import load_settings

        extra: dict[str, Any] = {"database_url": database_url} if database_url else {}
        settings = load_settings(self.data, **extra)
        database = Database.from_settings(settings)
        recipient = str(X25519Identity.generate().recipient)
        try:
            with database.session() as session:
                admin = create_account(session, settings, actor="system", username="root",
                                       role=Role.admin, password=secrets.token_urlsafe(16))
                thida = create_account(session, settings, actor="system", username="thida",
                                       role=Role.counsellor, password=secrets.token_urlsafe(16))
                session.commit()
                token = create_api_token(session, actor="system", account_id=thida.id,
                                         name="bench").token
                body = create_body(session, actor=admin.id, name="UN", description="")
                session.flush()
                add_recipient(session, settings, actor=admin.id, body_id=body.id,
                              organisation="UN", person="bench", recipient=recipient)
                body_id = body.id
                session.commit()
        finally:
            database.dispose()
        return token, body_id, recipient

    def serve(self, workers: int) -> tuple[subprocess.Popen[bytes], str]:
        port = _free_port()
        proc = subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(self.data), "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        _wait(f"{url}/api/v1/health")
        return proc, url


# --------------------------------------------------------------- big upload


def _http_implementation() -> str:
    """What uvicorn's "auto" choice runs in this environment."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http}/{loop}"


UPLOAD_ROUNDS = 3


def bench_upload(root: Path, size_mib: int) -> bool:
    node = Node(root / "upload")
    source = root / "attachment.bin"
    with open(source, "wb") as out:
        for _ in range(size_mib // 8):
            out.write(os.urandom(8 << 20))
    meta = root / "record.json"
    meta.write_bytes(record_bytes(record([node.body_id])))
    text = root / "statement.txt"
    text.write_text("bench statement", encoding="utf-8")

    def run_age() -> tuple[float, float, float]:
        """(seconds, seconds with fdatasync of the output, CPU seconds) of age."""
        cpu = _children_cpu()
        start = time.perf_counter()
        subprocess.run(["age", "-r", node.recipient, "-o", str(root / "ref.age"), str(source)],
                       check=True)
        seconds = time.perf_counter() - start
        cpu = _children_cpu() - cpu
        # Context, not the target: the server fdatasyncs every blob before naming
        # it (durability), which age does not; this is what that costs here.
        fd = os.open(root / "ref.age", os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
        durable = time.perf_counter() - start
        (root / "ref.age").unlink()
        return seconds, durable, cpu

    def run_upload(pid: int, url: str) -> tuple[float, float, float, bytes]:
        """(seconds, client CPU, server CPU, receipt) of one upload."""
        server_cpu = _cpu_seconds(pid)
        client_cpu = _children_cpu()
        start = time.perf_counter()
        done = subprocess.run(
            [str(BIN), "submit", "--server", url, "--token", node.token, "--meta", str(meta),
             "--json", "--quiet", str(text), str(source)],
            env=node.env, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        return (seconds, _children_cpu() - client_cpu, _cpu_seconds(pid) - server_cpu,
                done.stdout)

    # Interleaved rounds, best of each (as bench/seal.py does), each round
    # starting with no dirty pages left by the one before.
    proc, url = node.serve(workers=1)
    try:
        before = _status_kib(proc.pid, "VmRSS")
        ages, uploads = [], []
        for _ in range(UPLOAD_ROUNDS):
            os.sync()
            ages.append(run_age())
            os.sync()
            uploads.append(run_upload(proc.pid, url))
            json.loads(uploads[-1][3])
        peak = _status_kib(proc.pid, "VmHWM")
    finally:
        _stop(proc)
    age_seconds, durable_seconds, age_cpu = min(ages)
    upload_seconds, client_cpu, server_cpu, _ = min(uploads)
    ratio = upload_seconds / age_seconds
    growth_mib = (peak - before) / 1024
    print(f"upload {size_mib} MiB over HTTP: {upload_seconds:.2f} s "
          f"({size_mib / upload_seconds:.0f} MiB/s); age locally: {age_seconds:.2f} s "
          f"({size_mib / age_seconds:.0f} MiB/s); best of {UPLOAD_ROUNDS} interleaved rounds")
    print(f"  ratio intake/age: {ratio:.2f} (target <= 2.0) "
          f"{'OK' if ratio <= 2 else 'MISSED'}")
    print(f"  context: age then fdatasync of its output {durable_seconds:.2f} s, ratio "
          f"{upload_seconds / durable_seconds:.2f}; load average "
          f"{os.getloadavg()[0]:.1f}; server HTTP {_http_implementation()}")
    print(f"  CPU seconds (user+system): intake submit {client_cpu:.2f}, server "
          f"{server_cpu:.2f}; age {age_cpu:.2f} (both intake sides / age: "
          f"{(client_cpu + server_cpu) / max(age_cpu, 0.01):.1f})")
    print(f"  server peak RSS growth: {growth_mib:.1f} MiB (RSS before {before / 1024:.0f} MiB, "
          f"peak {peak / 1024:.0f} MiB; target < 64) {'OK' if growth_mib < 64 else 'MISSED'}")
    source.unlink()
    shutil.rmtree(node.data / "blobs", ignore_errors=True)
    return ratio <= 2 and growth_mib < 64


# --------------------------------------------------------------- small statements

SMALL_ROUNDS = 4

BARE_APP = textwrap.dedent('''
    """A bare FastAPI endpoint inserting one row: the reference for statements/s."""
    from pathlib import Path
    from fastapi import FastAPI, Request
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, insert
    from evidence_intake.service.db import Database
    from evidence_intake.service.settings import load_settings

    metadata = MetaData()
    rows = Table("bench_rows", metadata, Column("id", Integer, primary_key=True),
                 Column("digest", String(64)), Column("size", Integer))

    def app_factory() -> FastAPI:
        database = Database.from_settings(load_settings())
        app = FastAPI()

        @app.post("/bare", status_code=201)
        async def bare(request: Request) -> dict[str, int]:
            body = await request.body()
            import hashlib
            with database.session() as session:
                session.execute(insert(rows).values(digest=hashlib.sha256(body).hexdigest(),
                                                    size=len(body)))
                session.commit()
            return {"size": len(body)}

        return app
''')


async def _hammer(url: str, headers: dict[str, str], body: bytes, total: int,
                  concurrency: int) -> float:
    remaining = total
    failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 201:
                    failures += 1
        for _ in range(concurrency):  # warm-up: connections, worker imports, caches
            await client.post(url, content=body, headers=headers)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} requests failed against {url}")
    return total / elapsed


def _alternate(targets: list[tuple[str, dict[str, str], int]], body: bytes, total: int,
               concurrency: int) -> list[tuple[float, float, float, float]]:
    """(requests/s, then CPU ms per request of the server, the client, PostgreSQL) per target.

    Both servers run side by side (idle when not hammered) and take turns, so
    that a change in the machine's load (a shared machine) hits both sides
    alike instead of whichever happened to run second. ``pid`` (the third
    item of a target) is the server's supervisor; its workers are its children.
    CPU includes the warm-up requests of each round, on both sides alike.
    """
    per_round = max(total // SMALL_ROUNDS, concurrency)
    elapsed = [0.0] * len(targets)
    server_cpu = [0.0] * len(targets)
    client_cpu = [0.0] * len(targets)
    database_cpu = [0.0] * len(targets)
    for _ in range(SMALL_ROUNDS):
        for index, (url, headers, pid) in enumerate(targets):
            server, client, database = _tree_cpu(pid), _self_cpu(), _postgres_cpu()
            rate = asyncio.run(_hammer(url, headers, body, per_round, concurrency))
            server_cpu[index] += _tree_cpu(pid) - server
            client_cpu[index] += _self_cpu() - client
            database_cpu[index] += _postgres_cpu() - database
            elapsed[index] += per_round / rate
    requests = (per_round + concurrency) * SMALL_ROUNDS
    return [(per_round * SMALL_ROUNDS / seconds, 1000 * server / requests,
             1000 * client / requests, 1000 * database / requests)
            for seconds, server, client, database
            in zip(elapsed, server_cpu, client_cpu, database_cpu, strict=True)]


def bench_small(root: Path, backend: str, total: int) -> bool:
    database_url = None
    db_name = None
    if backend == "postgresql":
        import psycopg

        db_name = f"intake_bench_{secrets.token_hex(4)}"
        admin = POSTGRES.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        database_url = f"{POSTGRES.rpartition('/')[0]}/{db_name}"
    try:
        node = Node(root / backend, database_url)
        text = ("Statement text, about five kilobytes. " * 140).encode()[:5120]
        body, ctype = multipart([
            ("record", None, "application/json", record_bytes(record([node.body_id]))),
            ("text", None, "text/plain; charset=utf-8", text)])
        bare_dir = root / f"bare_{backend}"
        bare_dir.mkdir()
        (bare_dir / "bare_app.py").write_text(BARE_APP, encoding="utf-8")
        env = {**node.env, "PYTHONPATH": str(bare_dir)}
        setup = ("import bare_app; from evidence_intake.service.db import Database; "
                 "from evidence_intake.service.settings import load_settings; "
                 "d = Database.from_settings(load_settings()); "
                 "bare_app.metadata.create_all(d.engine); d.dispose()")
        subprocess.run([sys.executable, "-c", setup], env=env, check=True)
        proc, url = node.serve(workers=2)
        bare = None
        try:
            port = _free_port()
            bare = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bare_app:app_factory", "--factory",
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level",
                 "warning", "--no-access-log"],
                env=env, cwd=bare_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            _wait(f"http://127.0.0.1:{port}/docs")
            (rate, cpu, client, pg), (reference, bare_cpu, bare_client, bare_pg) = _alternate(
                [(f"{url}/api/v1/statements",
                  {"Authorization": f"Bearer {node.token}", "Content-Type": ctype}, proc.pid),
                 (f"http://127.0.0.1:{port}/bare", {"Content-Type": ctype}, bare.pid)],
                body, total, 16)
        finally:
            _stop(proc)
            if bare is not None:
                _stop(bare)
    finally:
        if db_name is not None:
            import psycopg

            admin = POSTGRES.replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    ratio = rate / reference
    print(f"5 KiB statements, 16 clients, 2 workers, {backend}: {rate:.0f}/s sealed and "
          f"audited; bare one-row endpoint {reference:.0f}/s; {SMALL_ROUNDS} alternating rounds "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"  ratio: {ratio:.2f} (target >= 0.5) {'OK' if ratio >= 0.5 else 'MISSED'}")
    print(f"  CPU ms per request (user+system): server {cpu:.2f}, bare server {bare_cpu:.2f}; "
          f"the benchmark's own HTTP client {client:.2f} and {bare_client:.2f} (same machine)"
          + (f"; PostgreSQL {pg:.2f} and {bare_pg:.2f}" if backend == "postgresql" else ""))
    return ratio >= 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--statements", type=int, default=1200)
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append",
                        help="small statements on this engine only (repeatable; default both)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        root = Path(tmp)
        if not args.skip_upload:
            results.append(bench_upload(root, args.size_mib))
        if not args.skip_small:
            for backend in args.backend or ["sqlite", "postgresql"]:
                results.append(bench_small(root, backend, args.statements))
    # Figures are reported, not enforced: the exit code says the benchmark ran.
    print("targets met" if all(results) else "some targets missed (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
