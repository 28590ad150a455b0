"""The app applies INTAKE_WORKER_THREADS to its event loop's thread pool at start-up."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from evidence_intake.service import threads
from intake_api_support import make_api


def test_the_app_sets_its_processes_thread_limit(tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    async def limits() -> tuple[float, float]:
        return (anyio.to_thread.current_default_thread_limiter().total_tokens,
                threads.long_work().total_tokens)

    for api in make_api(tmp_path, "sqlite", request, worker_threads=3):
        assert api.client.portal.call(limits) == (3, threads.LONG_WORK)
        # And requests still run (authentication and the route use the pool).
        assert api.client.get("/api/v1/health").status_code == 200
