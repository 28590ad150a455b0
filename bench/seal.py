"""Benchmark: ``intake seal``/``intake open`` against Debian's ``age``, same files, same run.

Targets (issue 2): throughput of ``intake seal`` and ``intake open`` at least
0.8x ``age``'s on a 256 MiB file; peak RSS of ``intake`` under 64 MiB on a
1 GiB file. Both tools write to stdout redirected into a file in the same
temporary folder (``intake -o`` adds an fsync that ``age -o`` does not do, so
``-o`` would compare durability, not crypto). Each measurement is the best of
several interleaved rounds, so a busy machine slows both tools alike.

``intake`` runs as users run it: the console script, from bytecode. pip
compiles an installed package's modules; an editable checkout has no
bytecode until something writes it (and PYTHONDONTWRITEBYTECODE forbids
Python to), so the benchmark compiles the project first. Without that, every
``intake`` run spends about 20 ms compiling source, a tenth of a 256 MiB seal.

    .venv/bin/python bench/seal.py [--size-mib 256] [--big-mib 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
INTAKE = [str(Path(sys.executable).parent / "intake")]


def compile_project() -> None:
    """Write the bytecode an installed ``intake`` would have (see the docstring)."""
    for folder in ("crypto", "audit", "schemas", "service", "evidence_intake"):
        if not compileall.compile_dir(REPO / folder, quiet=1):
            raise SystemExit(f"bench: {folder}/ does not compile")


def measured(argv: list[str], rss_file: Path) -> list[str]:
    """argv run under GNU time, which writes the child's peak RSS (KiB) to rss_file.

    os.wait4's ru_maxrss would count the benchmark's own pages, which the
    forked child holds until it execs; GNU time's fork is tiny.
    """
    return [TIME, "-f", "%M %U %S", "-o", str(rss_file), *argv]


def read_rss(rss_file: Path) -> int:
    return int(rss_file.read_text().split()[-3])


def read_cpu(rss_file: Path) -> float:
    """User plus system CPU seconds of the child (steadier than wall time on a busy host)."""
    fields = rss_file.read_text().split()
    return float(fields[-2]) + float(fields[-1])


def timed(
    argv: list[str], stdin: Path | None, stdout: Path | None
) -> tuple[float, int, float]:
    """Run argv; return (wall seconds, peak RSS in KiB, CPU seconds) of that one child."""
    rss_file = Path(tempfile.mkstemp(prefix="intake-bench-rss-")[1])
    try:
        with (
            open(stdin, "rb") if stdin else open(os.devnull, "rb") as src,
            open(stdout, "wb") if stdout else open(os.devnull, "wb") as dst,
        ):
            start = time.perf_counter()
            result = subprocess.run(measured(argv, rss_file), stdin=src, stdout=dst, check=False)
            elapsed = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(f"bench: {' '.join(argv)} failed with exit {result.returncode}")
        return elapsed, read_rss(rss_file), read_cpu(rss_file)
    finally:
        rss_file.unlink()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def make_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        left = size
        while left:
            block = min(left, 16 * MIB)
            handle.write(os.urandom(block))
            left -= block


Measure = tuple[float, int, float]


def throughput_round(
    work: Path, key: Path, recipient: str, rounds: int
) -> dict[str, Measure]:
    plain = work / "plain"
    cases = {
        "age seal": ([AGE, "-r", recipient], plain, work / "age.age"),
        "intake seal": ([*INTAKE, "seal", "-q", "-r", recipient], plain, work / "intake.age"),
        "age open": ([AGE, "-d", "-i", str(key)], work / "intake.age", work / "age.out"),
        "intake open": ([*INTAKE, "open", "-q", "-i", str(key)], work / "age.age",
                        work / "intake.out"),
    }
    best: dict[str, Measure] = {}
    for _ in range(rounds):
        for name, (argv, src, dst) in cases.items():
            elapsed, rss, cpu = timed(argv, src, dst)
            old = best.get(name, (elapsed, rss, cpu))
            best[name] = (min(elapsed, old[0]), max(rss, old[1]), min(cpu, old[2]))
    # Each tool opened the other's file: both must give back the plaintext.
    want = sha256(plain)
    for out in ("age.out", "intake.out"):
        if sha256(work / out) != want:
            raise SystemExit(f"bench: {out} differs from the plaintext")
    return best


def big_file_rss(work: Path, key: Path, recipient: str, size: int) -> tuple[float, int, int]:
    """Seal a sparse file of ``size`` bytes and pipe it straight into open."""
    sparse = work / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(size)
    seal_rss, open_rss = work / "seal.rss", work / "open.rss"
    start = time.perf_counter()
    with open(sparse, "rb") as src, open(os.devnull, "wb") as sink:
        sealer = subprocess.Popen(
            measured([*INTAKE, "seal", "-q", "-r", recipient], seal_rss),
            stdin=src, stdout=subprocess.PIPE,
        )
        opener = subprocess.Popen(
            measured([*INTAKE, "open", "-q", "-i", str(key)], open_rss),
            stdin=sealer.stdout, stdout=sink,
        )
        assert sealer.stdout is not None
        sealer.stdout.close()
        codes = (sealer.wait(), opener.wait())
    elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit("bench: the sparse-file seal | open pipeline failed")
    return elapsed, read_rss(seal_rss), read_rss(open_rss)


def startup(rounds: int, recipient: str) -> tuple[float, float]:
    """Wall time of ``intake seal`` of empty input, and of a bare Python."""
    intake = min(timed([*INTAKE, "seal", "-q", "-r", recipient], None, None)[0]
                 for _ in range(rounds))
    bare = min(timed([sys.executable, "-c", "pass"], None, None)[0] for _ in range(rounds))
    return intake, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if TIME is None:
        print("bench: GNU time is needed for peak RSS (apt-get install time)", file=sys.stderr)
        return 2
    if AGE is None or shutil.which("age-keygen") is None:
        print("bench: Debian's age is not installed (apt-get install age)", file=sys.stderr)
        return 2
    size = args.size_mib * MIB
    compile_project()
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        work = Path(tmp)
        key = work / "key.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True,
                                   capture_output=True, text=True).stdout.strip()
        make_random_file(work / "plain", size)
        best = throughput_round(work, key, recipient, args.rounds)
        print(f"{args.size_mib} MiB random file, best of {args.rounds} interleaved rounds")
        print(f"{'':14}{'wall s':>9}{'MiB/s':>9}{'CPU s':>9}{'peak RSS':>11}")
        for name, (elapsed, rss, cpu) in best.items():
            print(f"{name:14}{elapsed:9.3f}{args.size_mib / elapsed:9.0f}{cpu:9.2f}"
                  f"{rss / 1024:7.1f} MiB")
        ok = True
        for op in ("seal", "open"):
            ratio = best[f"age {op}"][0] / best[f"intake {op}"][0]
            cpu_ratio = best[f"age {op}"][2] / best[f"intake {op}"][2]
            ok &= ratio >= 0.8
            verdict = "meets" if ratio >= 0.8 else "MISSES"
            print(f"throughput intake/age, {op}: {ratio:.2f}x wall ({verdict} the 0.8x target), "
                  f"{cpu_ratio:.2f}x by CPU time")
        intake_start, bare_start = startup(args.rounds, recipient)
        print(f"startup: intake seal of empty input {intake_start * 1000:.0f} ms, "
              f"bare python {bare_start * 1000:.0f} ms")
        for op in ("seal", "open"):
            net = best[f"intake {op}"][0] - intake_start
            if net > 0:
                print(f"throughput intake/age, {op}, net of intake's startup: "
                      f"{best[f'age {op}'][0] / net:.2f}x")
        elapsed, seal_rss, open_rss = big_file_rss(work, key, recipient, args.big_mib * MIB)
        print(f"{args.big_mib} MiB sparse file, intake seal | intake open: {elapsed:.2f} s; "
              f"peak RSS seal {seal_rss / 1024:.1f} MiB, open {open_rss / 1024:.1f} MiB")
        rss_ok = max(seal_rss, open_rss) < 64 * 1024
        ok &= rss_ok
        print(f"peak RSS target (< 64 MiB): {'met' if rss_ok else 'MISSED'}")
    return 0 if ok else 1


AGE = shutil.which("age")
TIME = shutil.which("time", path="/usr/bin:/bin") or None

if __name__ == "__main__":
    sys.exit(main())
