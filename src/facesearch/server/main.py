"""``facesearch serve``: run the HTTP server (uvicorn; thread pools for calls; one process, or
``--workers N`` processes on one shared PostgreSQL store)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
from typing import TYPE_CHECKING

from facesearch.server.auth import Verifier, load_keys, local_key
from facesearch.server.throttle import DEFAULT_MAX_QUEUE
from facesearch.wire.keys import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, is_loopback

if TYPE_CHECKING:
    from facesearch.server.app import App
    from facesearch.server.auth import AccessKey

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9777
# How ``serve --workers N`` hands its options to the worker processes it spawns.
_WORKER_SETTINGS = "FACESEARCH_SERVE_WORKER_SETTINGS"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of ``facesearch serve``."""
    parser = argparse.ArgumentParser(
        prog="facesearch serve", description="Serve the Rekognition face-collection API over HTTP."
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument("--data-dir", default=None, help="where the embedded store keeps its data")
    parser.add_argument(
        "--store",
        default=os.environ.get("FACESEARCH_STORE") or None,
        metavar="postgresql://USER:PASS@HOST:PORT/DB",
        help="a PostgreSQL database shared by every server process (default $FACESEARCH_STORE; "
        "without one, the embedded store in --data-dir)",
    )
    parser.add_argument(
        "--store-replica",
        dest="store_replicas",
        action="append",
        default=None,
        metavar="postgresql://...",
        help="a streaming replica of the --store database that searches and reads may use; "
        "repeat for more (default $FACESEARCH_STORE_REPLICAS, separated by spaces)",
    )
    parser.add_argument(
        "--search",
        default=os.environ.get("FACESEARCH_SEARCH") or "index",
        choices=("index", "database"),
        help="where searches run: each process's in-memory indexes (index), or inside the "
        "PostgreSQL of --store, so that a process holds no index and starts at once "
        "(database; default $FACESEARCH_SEARCH, else %(default)s)",
    )
    parser.add_argument(
        "--index-dir",
        default=os.environ.get("FACESEARCH_INDEX_DIR") or None,
        help="where the search indexes are kept on local disk, shared by the processes of the "
        "machine (default $FACESEARCH_INDEX_DIR, else indexes/ in --data-dir for the embedded "
        "store, or a folder per store in ~/.cache/facesearch/indexes)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default %(default)s; more than one needs --store)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="threads running service calls, per pool and process (default %(default)s)",
    )
    parser.add_argument(
        "--video-workers",
        type=int,
        default=1,
        help="threads per process running stored-video jobs, at a lower priority than image "
        "calls (default %(default)s; 0: leave the jobs to other processes)",
    )
    parser.add_argument(
        "--credentials-file",
        default=os.environ.get("FACESEARCH_CREDENTIALS_FILE"),
        help="INI file of access keys (default $FACESEARCH_CREDENTIALS_FILE)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=DEFAULT_MAX_QUEUE,
        help="image operations that may wait for a thread, per process, beyond those running; "
        "more are refused with ThrottlingException (default %(default)s)",
    )
    parser.add_argument(
        "--max-tps",
        type=float,
        default=None,
        help="requests per second per access key, unless the credentials file sets the key's "
        "max_tps; more get ProvisionedThroughputExceededException (default: unlimited)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds SIGTERM waits for requests in flight before closing them "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--public-metrics",
        action="store_true",
        help="answer GET /metrics from any address, not only loopback (its labels name "
        "every account's collections)",
    )
    parser.add_argument("--tls-cert", default=None, help="PEM certificate (chain): serve HTTPS")
    parser.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="do not write a JSON line per request to standard output",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.threads < 1:
        parser.error("--workers and --threads must be at least 1")
    if args.video_workers < 0:
        parser.error("--video-workers cannot be negative")
    if args.max_queue < 0 or args.shutdown_timeout < 0:
        parser.error("--max-queue and --shutdown-timeout cannot be negative")
    if args.max_tps is not None and not args.max_tps > 0:
        parser.error("--max-tps must be a positive number")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.store_replicas and not args.store:
        parser.error("--store-replica needs --store postgresql://... (the primary)")
    if args.search == "database" and not args.store:
        parser.error("--search database needs --store postgresql://...")
    if args.workers > 1 and not args.store:
        parser.error(
            "--workers N needs a store the processes share: --store postgresql://... "
            "(the embedded store takes one writer at a time)"
        )
    return args


def access_keys(credentials_file: str | None) -> dict[str, AccessKey]:
    """The keys clients may sign with; the local-only key when none are configured."""
    return load_keys(credentials_file) or {LOCAL_ACCESS_KEY_ID: local_key()}


def make_app(
    store: str | None,
    data_dir: str | None,
    credentials_file: str | None,
    threads: int,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_tps: float | None = None,
    public_metrics: bool = False,
    video_workers: int = 1,
    store_replicas: list[str] | None = None,
    search: str = "index",
    index_dir: str | None = None,
) -> App:
    """The server's app over a service that loads every collection's index in the background
    and its models now, before the first request, and runs stored-video jobs on
    ``video_workers`` threads."""
    from facesearch.server.app import App
    from facesearch.server.console import SessionStore
    from facesearch.service import RekognitionService

    service = RekognitionService(
        data_dir,
        store=store,
        store_replicas=store_replicas,
        preload=True,
        video_runner=False,
        search_mode=search,
        index_dir=index_dir,
    )
    app = App(
        service,
        Verifier(access_keys(credentials_file)),
        threads=threads,
        max_queue=max_queue,
        max_tps=max_tps,
        public_metrics=public_metrics,
        sessions=SessionStore(service.state.store),
    )
    started = time.perf_counter()
    service.state.analyzer.check_ready()
    app.metrics.model_load.set(time.perf_counter() - started)
    service.start_video_workers(video_workers)  # stopped by the service's close
    app.metrics.watch_video_jobs(service.video_jobs)
    return app


def worker_app() -> App:
    """The app of one ``--workers`` process (uvicorn's factory), from its parent's options."""
    settings = json.loads(os.environ[_WORKER_SETTINGS])
    # A spawned process starts with no logging set up: the parent's configuration again.
    _set_up_logging(settings.pop("log_level"), settings.pop("access_log"))
    return make_app(**settings)


def _check_tls(cert: str, key: str) -> None:
    """ValueError naming the problem if the certificate and key cannot serve HTTPS."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"cannot use --tls-cert {cert} with --tls-key {key}: {error}") from None


def _set_up_logging(level: str, access_log: bool) -> None:
    """The server's log on standard error at ``level``; the access log's JSON lines on standard
    output as they are, or nowhere."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # botocore's debug log prints the S3 requests' headers, access key id included: keep it out
    # of the server's log even at --log-level debug.
    logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLogger().level))
    logger = logging.getLogger("facesearch.access")
    logger.propagate = False
    logger.setLevel(logging.INFO if access_log else logging.CRITICAL)
    if access_log:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why ``host:port`` can't be listened on (as uvicorn will bind it), or None if it can."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        return error.strerror or str(error)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; returns the process exit status."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    _set_up_logging(args.log_level, args.access_log)
    try:
        configured = load_keys(args.credentials_file)
        if args.tls_cert:
            _check_tls(args.tls_cert, args.tls_key)
    except ValueError as error:
        print(f"facesearch serve: {error}", file=sys.stderr)
        return 2
    if not configured:
        if not is_loopback(args.host):
            print(
                f"facesearch serve: refusing to listen on {args.host} without access keys; set "
                "FACESEARCH_ACCESS_KEY_ID and FACESEARCH_SECRET_ACCESS_KEY or --credentials-file",
                file=sys.stderr,
            )
            return 2
        print(
            "facesearch serve: no access keys configured; loopback only, accepting the local "
            f"credentials AWS_ACCESS_KEY_ID={LOCAL_ACCESS_KEY_ID} "
            f"AWS_SECRET_ACCESS_KEY={LOCAL_SECRET_ACCESS_KEY}",
            file=sys.stderr,
            flush=True,
        )

    # uvicorn re-raises the signal that stopped it once it has shut down gracefully, and a signal
    # may come while the models load: both are orderly stops, so exit 0, not "killed by SIGTERM".
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _exit_cleanly)

    import uvicorn

    from facesearch.server.http import PROTOCOL
    from facesearch.store import StoreUnavailableError
    from facesearch.vision.errors import ModelsMissingError
    from facesearch.vision.models import check_installed

    try:
        check_installed()  # here, not in each worker: one clear message, no restart loop
    except ModelsMissingError as error:
        print(f"facesearch serve: {error}", file=sys.stderr)
        return 2
    # Before the models load: a taken port is the usual reason a second `make run` fails.
    taken = _cannot_listen(args.host, args.port)
    if taken is not None:
        print(
            f"facesearch serve: cannot listen on {args.host}:{args.port}: {taken}. Is another "
            "server running there? Choose another port with --port.",
            file=sys.stderr,
        )
        return 2

    settings = {
        "store": args.store,
        "store_replicas": args.store_replicas,
        "data_dir": args.data_dir,
        "credentials_file": args.credentials_file,
        "threads": args.threads,
        "max_queue": args.max_queue,
        "max_tps": args.max_tps,
        "public_metrics": args.public_metrics,
        "video_workers": args.video_workers,
        "search": args.search,
        "index_dir": args.index_dir,
    }
    options = {
        "host": args.host,
        "port": args.port,
        "lifespan": "on",
        # Our own JSON access log replaces uvicorn's.
        "access_log": False,
        "log_level": args.log_level,
        "http": PROTOCOL,
        # SIGTERM waits this long for requests in flight, then closes their connections; calls
        # already in a worker thread still finish (App.close), so no write is cut short.
        "timeout_graceful_shutdown": args.shutdown_timeout,
        "ssl_certfile": args.tls_cert,
        "ssl_keyfile": args.tls_key,
    }
    if args.workers > 1:
        settings |= {"log_level": args.log_level, "access_log": args.access_log}
        # uvicorn's supervisor spawns the processes on one listening socket and replaces any
        # that dies; each one opens the store and loads the models itself.
        os.environ[_WORKER_SETTINGS] = json.dumps(settings)
        uvicorn.run(
            "facesearch.server.main:worker_app", factory=True, workers=args.workers, **options
        )
        return 0
    try:
        # Loads the models and opens the store once, before the first request.
        app = make_app(**settings)
    except (StoreUnavailableError, ValueError) as error:
        print(f"facesearch serve: {error}", file=sys.stderr)
        return 2
    server = uvicorn.Server(uvicorn.Config(app, **options))
    try:
        server.run()
    finally:
        # Once started, the app's lifespan shutdown closes the service; otherwise close it here.
        if not server.started:
            app.close()
    return 0 if server.started else 1
