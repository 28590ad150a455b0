"""Run a command on a pseudo-terminal and type answers at its prompts.

age, minisign and intake read passphrases from the controlling terminal, never
from stdin, so the tests that exercise those prompts drive them through a pty.
"""

from __future__ import annotations

import os
import pty
import select
import time
from collections.abc import Sequence
from pathlib import Path


def run_on_tty(
    argv: Sequence[str | Path],
    *,
    answers: Sequence[str],
    prompt: bytes,
    cwd: Path | None = None,
    timeout: float = 120,
) -> tuple[int, bytes]:
    """Run ``argv`` with a pty as its terminal; return its exit code and transcript.

    Each time one more ``prompt`` (matched exactly, case included) has appeared and
    the output ends in a colon, the next of ``answers`` is typed. A child still
    running after ``timeout`` seconds is killed.
    """
    args = [str(arg) for arg in argv]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        try:
            if cwd is not None:
                os.chdir(cwd)
            os.execv(args[0], args)  # noqa: S606 - argv is built by the test, no shell wanted
        finally:
            os._exit(127)
    transcript = b""
    sent = 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                transcript += chunk
            shown = transcript.count(prompt)
            if sent < len(answers) and shown > sent and transcript.rstrip().endswith(b":"):
                os.write(fd, answers[sent].encode("utf-8") + b"\n")
                sent += 1
        else:
            os.kill(pid, 9)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), transcript
