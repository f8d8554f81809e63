"""A 30-second soak: 8 boto3 clients run the production mix against one ``facesearch serve``.

Searches and lists mostly, and each client's enrol-associate-remove cycle (tests/support/soak.py;
benchmarks/soak.py runs the same for minutes with 16 clients). Asserts that nothing but
throttling failed, that every operation of the mix ran and succeeded, that RSS did not balloon and
that the server still shuts down cleanly; times are printed, never asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.serve import start_serve, stop_serve
from support.soak import MIX_OPERATIONS, populate, run_mixed_load, soak_client

pytestmark = pytest.mark.slow

KEY_ID, SECRET = "AKIDSOAK", "soak-secret"
SECONDS = 30
WARMUP = 0.2 * SECONDS


def test_mixed_load_for_30_seconds(tmp_path: Path, photos_dir: Path) -> None:
    log = tmp_path / "serve.log"
    server, url = start_serve(tmp_path / "data", KEY_ID, SECRET, log)
    try:
        population = populate(soak_client(url, KEY_ID, SECRET), photos_dir)
        report = run_mixed_load(
            url, KEY_ID, SECRET, population, clients=8, seconds=SECONDS, server_pid=server.pid
        )
    finally:
        status = stop_serve(server)
    summary = report.summary(WARMUP)
    print(summary)
    context = f"{summary}\n--- server log, last lines ---\n{log.read_text()[-3000:]}"
    assert not report.failures, context
    assert {op for op, n in report.successes.items() if n} == set(MIX_OPERATIONS), context
    # 30 s is too short for a growth figure worth a tight bound; this catches a runaway leak.
    assert report.rss_growth(WARMUP)[2] < 50, context
    assert status == 0, context
