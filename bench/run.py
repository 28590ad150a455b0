"""Run every benchmark script in bench/ and print their reports.

Each script measures its own reference in the same run (Debian's ``age``,
``zip -0``, ``sha256sum``, a bare FastAPI endpoint, a plain read-and-hash loop)
and prints ratios against it, so the figures mean the same on any machine.

    make bench                       # all of them
    .venv/bin/python bench/run.py seal audit   # a selection, by script name
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("seal", "seal_pq", "audit", "intake", "export")


def main(argv: list[str]) -> int:
    wanted = argv or [name for name in ORDER if (HERE / f"{name}.py").exists()]
    failed = []
    for name in wanted:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"bench: no such benchmark: {name}", file=sys.stderr)
            return 2
        print(f"\n=== bench/{name}.py ===", flush=True)
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], check=False)
        print(f"=== bench/{name}.py: exit {result.returncode} in {time.monotonic() - start:.1f} s")
        if result.returncode:
            failed.append(name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
