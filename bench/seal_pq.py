"""Benchmark: hybrid post-quantum (mlkem768x25519) sealing beside classical X25519.

Two measurements, each against its classical reference taken in the same run,
so the ratios mean the same on any machine:

1. ``intake seal`` / ``intake open`` of a large file (256 MiB by default) to one
   hybrid recipient and to one X25519 recipient: throughput and peak RSS of the
   child process. The payload (STREAM, ChaCha20-Poly1305) is identical; only
   the header differs, by one HPKE operation per recipient.
2. Sealing 1,000 small statements (4 KiB each) to 5 recipients in-process with
   ``evidence_intake.crypto.age.encrypt``, hybrid versus X25519, and opening
   them with one identity: the per-statement cost the intake service pays.

    .venv/bin/python bench/seal_pq.py                 # the figures for the report
    .venv/bin/python bench/seal_pq.py --size-mib 16 --statements 100   # a quick look
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from evidence_intake.crypto import age
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity
from evidence_intake.crypto.age.stanza import Identity, Recipient
from evidence_intake.crypto.age.x25519 import X25519Identity

INTAKE = Path(sys.executable).parent / "intake"
MIB = 1024 * 1024


def _run(args: Sequence[str]) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in KiB) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(args)} failed: {stderr}")
    return elapsed, usage.ru_maxrss


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def _large_file(tmp: Path, size_mib: int, rounds: int) -> None:
    plain = tmp / "plain.bin"
    _write_random(plain, size_mib * MIB)
    kinds: dict[str, X25519Identity | HybridIdentity] = {
        "x25519": X25519Identity.generate(),
        "mlkem768x25519": HybridIdentity.generate(),
    }
    best: dict[tuple[str, str], tuple[float, int]] = {}
    for _ in range(rounds):  # alternate the kinds so drift affects both alike
        for kind, identity in kinds.items():
            key = tmp / f"{kind}.key"
            key.write_text(f"{identity}\n")
            sealed = tmp / f"{kind}.age"
            recipient = str(identity.recipient)
            seal = _run([str(INTAKE), "seal", "-q", "-r", recipient, "-o", str(sealed), str(plain)])
            opened = tmp / f"{kind}.out"
            open_ = _run(
                [str(INTAKE), "open", "-q", "-i", str(key), "-o", str(opened), str(sealed)]
            )
            if opened.stat().st_size != plain.stat().st_size:
                raise SystemExit(f"{kind}: round trip changed the size")
            opened.unlink()
            for op, result in (("seal", seal), ("open", open_)):
                if (kind, op) not in best or result[0] < best[(kind, op)][0]:
                    best[(kind, op)] = result
    print(f"\n{size_mib} MiB file with `intake`, one recipient, best of {rounds}:")
    print(f"  {'recipient':<16} {'op':<5} {'seconds':>8} {'MiB/s':>8} {'peak RSS':>10}")
    for (kind, op), (seconds, rss) in best.items():
        print(
            f"  {kind:<16} {op:<5} {seconds:8.2f} {size_mib / seconds:8.1f} {rss / 1024:7.1f} MiB"
        )
    for op in ("seal", "open"):
        ratio = best[("mlkem768x25519", op)][0] / best[("x25519", op)][0]
        print(f"  hybrid/classical time ratio, {op}: {ratio:.3f}")


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _statements(count: int, size: int, recipients_n: int) -> None:
    statements = [os.urandom(size) for _ in range(count)]
    x25519 = [X25519Identity.generate() for _ in range(recipients_n)]
    hybrid = [HybridIdentity.generate() for _ in range(recipients_n)]
    pools: dict[str, tuple[list[Recipient], Identity]] = {
        "x25519": ([i.recipient for i in x25519], x25519[-1]),
        "mlkem768x25519": ([i.recipient for i in hybrid], hybrid[-1]),
    }
    sealed: dict[str, list[bytes]] = {}
    seal_s: dict[str, float] = {}
    open_s: dict[str, float] = {}

    def seal_all(kind: str) -> None:
        out = []
        for text in statements:
            buf = io.BytesIO()
            age.encrypt(io.BytesIO(text), buf, pools[kind][0])
            out.append(buf.getvalue())
        sealed[kind] = out

    def open_all(kind: str) -> None:
        identity = pools[kind][1]
        for blob, text in zip(sealed[kind], statements, strict=True):
            buf = io.BytesIO()
            age.decrypt(io.BytesIO(blob), buf, [identity])
            if buf.getvalue() != text:
                raise SystemExit(f"{kind}: statement changed in the round trip")

    for kind in pools:  # warm up imports and key objects outside the timing
        seal_all(kind)
    for kind in pools:
        seal_s[kind] = _timed(functools.partial(seal_all, kind))
        open_s[kind] = _timed(functools.partial(open_all, kind))

    print(f"\n{count} statements of {size} bytes, {recipients_n} recipients each, in-process:")
    columns = ("seal s", 7), ("ms/stmt", 8), ("open s", 7), ("ms/stmt", 8), ("bytes/file", 10)
    print(f"  {'recipient':<16} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for kind in pools:
        avg = sum(len(b) for b in sealed[kind]) / count
        print(
            f"  {kind:<16} {seal_s[kind]:7.2f} {1000 * seal_s[kind] / count:8.3f}"
            f" {open_s[kind]:7.2f} {1000 * open_s[kind] / count:8.3f} {avg:10.0f}"
        )
    print(f"  hybrid/classical time ratio, seal: {seal_s['mlkem768x25519'] / seal_s['x25519']:.2f}")
    print(f"  hybrid/classical time ratio, open: {open_s['mlkem768x25519'] / open_s['x25519']:.2f}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="large file size (256)")
    parser.add_argument("--rounds", type=int, default=3, help="large-file rounds, best kept (3)")
    parser.add_argument("--statements", type=int, default=1000, help="small statements (1000)")
    parser.add_argument("--statement-size", type=int, default=4096, help="bytes each (4096)")
    parser.add_argument("--recipients", type=int, default=5, help="recipients per statement (5)")
    args = parser.parse_args(argv)
    if not INTAKE.exists():
        print(f"bench: {INTAKE} not found; install the project first", file=sys.stderr)
        return 2
    # Timings on a shared machine are only comparable within a run; say how busy it was.
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-seal-pq-") as tmp:
        _large_file(Path(tmp), args.size_mib, args.rounds)
    _statements(args.statements, args.statement_size, args.recipients)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
