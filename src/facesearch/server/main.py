"""``facesearch serve``: run the HTTP server (uvicorn, one process, thread pools for calls)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys

from facesearch.server.auth import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_SECRET_ACCESS_KEY,
    Verifier,
    load_keys,
    local_key,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9777


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options of ``facesearch serve``."""
    parser = argparse.ArgumentParser(
        prog="facesearch serve", description="Serve the Rekognition face-collection API over HTTP."
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument("--data-dir", default=None, help="where the store keeps its data")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="threads running service calls, per pool (default %(default)s)",
    )
    parser.add_argument(
        "--credentials-file",
        default=os.environ.get("FACESEARCH_CREDENTIALS_FILE"),
        help="INI file of access keys (default $FACESEARCH_CREDENTIALS_FILE)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; returns the process exit status."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # botocore's debug log prints the S3 requests' headers, access key id included: keep it out
    # of the server's log even at --log-level debug.
    logging.getLogger("botocore").setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        keys = load_keys(args.credentials_file)
    except ValueError as error:
        print(f"facesearch serve: {error}", file=sys.stderr)
        return 2
    if not keys:
        if not is_loopback(args.host):
            print(
                f"facesearch serve: refusing to listen on {args.host} without access keys; set "
                "FACESEARCH_ACCESS_KEY_ID and FACESEARCH_SECRET_ACCESS_KEY or --credentials-file",
                file=sys.stderr,
            )
            return 2
        keys = {LOCAL_ACCESS_KEY_ID: local_key()}
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

    from facesearch.server.app import App
    from facesearch.service import RekognitionService

    # Loads the models and opens the store once, before the first request.
    app = App(RekognitionService(args.data_dir), Verifier(keys), workers=args.workers)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        lifespan="on",
        access_log=args.log_level == "debug",
        log_level=args.log_level,
        # uvicorn waits for in-flight requests on SIGTERM; no deadline, so no write is cut short.
        timeout_graceful_shutdown=None,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        # Once started, the app's lifespan shutdown closes the service; otherwise close it here.
        if not server.started:
            app.close()
    return 0 if server.started else 1
