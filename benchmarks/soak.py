"""Soak: concurrent boto3 clients run a production-like mix against one ``facesearch serve``.

Starts ``facesearch serve`` on a temporary data directory (keys from FACESEARCH_ACCESS_KEY_ID /
FACESEARCH_SECRET_ACCESS_KEY as a deployment sets them), enrols users from the photo set, then
runs ``--clients`` threads, each with its own boto3 client (standard retries), for ``--minutes``:
mostly SearchUsersByImage, SearchFacesByImage, SearchUsers, ListFaces, ListUsers and
DescribeCollection, and each client's IndexFaces, CreateUser, AssociateFaces, DisassociateFaces,
DeleteFaces, DeleteUser cycle (tests/support/soak.py; tests/server/test_soak.py runs it for 30 s).

Threads rather than processes: on a 2-core machine 16 client processes would compete with the
server for the cores it is measured on; in threads the clients share one core at most (the GIL)
and the report prints their CPU time next to the server's to show they are not the bottleneck.

Prints errors by code (throttling counted apart, and allowed), p50/p99 latency per operation, the
server's RSS after the warm-up (the first ``--warmup`` fraction of the run) and at the end, and the
load average. Exits 1 on any error other than throttling, or RSS growth of 5 % or more.
``--people``: how many people are enrolled. Run with tests/ on the path (tests/support/):

    PYTHONPATH=tests .venv/bin/python benchmarks/soak.py [--minutes 10] [--clients 16] [--people N]
        [--photos DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from support.serve import start_serve, stop_serve
from support.soak import populate, run_mixed_load, soak_client

REPO = Path(__file__).resolve().parents[1]

DEFAULT_PHOTOS = REPO.parent / "shared" / "datasets" / "faces"
KEY_ID, SECRET = "AKIDSOAKBENCH", "soak-bench-secret"
MAX_RSS_GROWTH = 5.0  # percent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run")
    parser.add_argument("--people", type=int, default=10, help="people enrolled")
    parser.add_argument(
        "--photos",
        type=Path,
        default=Path(os.environ.get("FACESEARCH_TEST_PHOTOS", DEFAULT_PHOTOS)),
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    seconds = args.minutes * 60
    warmup = args.warmup * seconds
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="facesearch-soak-") as workdir:
        log = Path(workdir) / "serve.log"
        server, url = start_serve(Path(workdir) / "data", KEY_ID, SECRET, log)
        try:
            population = populate(soak_client(url, KEY_ID, SECRET), args.photos, args.people)
            print(
                f"{len(population.users)} users, {len(population.faces)} faces enrolled; "
                f"{args.clients} clients for {args.minutes:g} min",
                flush=True,
            )
            report = run_mixed_load(
                url,
                KEY_ID,
                SECRET,
                population,
                clients=args.clients,
                seconds=seconds,
                server_pid=server.pid,
            )
        finally:
            status = stop_serve(server)
        server_log = log.read_text(errors="replace")

    print(report.summary(warmup))
    print(f"server exit status after SIGTERM: {status}")
    start, end, growth = report.rss_growth(warmup)
    if args.json:
        figures = {
            "seconds": report.seconds,
            "clients": args.clients,
            "calls": dict(report.calls),
            "errors": {f"{op} {code}": n for (op, code), n in report.errors.items()},
            "throttled": report.throttled,
            "rss_kib": {"after_warmup": start, "end": end, "growth_percent": growth},
            "load_average_end": report.load[-1][1] if report.load else None,
        }
        args.json.write_text(json.dumps(figures, indent=2))
    failed = bool(report.failures) or growth >= MAX_RSS_GROWTH or status != 0
    if report.failures or status != 0:
        print("--- server log, last lines ---\n" + server_log[-3000:])
    print("FAILED" if failed else "passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
