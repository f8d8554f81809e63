"""``facesearch get-face-search --job-id J --wait`` (and ``get-face-detection``): wait for a
stored-video job to end, then answer as usual.

The command polls the Get operation (one result per call) until JobStatus is no longer
IN_PROGRESS, drawing the job's progress (facesearch's ``x-facesearch-progress`` response header,
docs/video-jobs.md) as a bar on stderr when it is a terminal or with ``--progress``; then it lets
the command run as it would without ``--wait``, so the output is the one ``aws`` prints. Without
``--wait`` nothing changes. An error while polling (an unknown JobId, say) is left to that
normal call to report.
"""

from __future__ import annotations

import sys
import time
from argparse import Namespace
from typing import Any, TextIO

from awscli.arguments import CustomArgument
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.session import Session

from facesearch.cli.embedded import Transport
from facesearch.defaults import PROGRESS_HEADER

# The Get operations of stored-video jobs, by command name.
COMMANDS = {"get-face-search": "GetFaceSearch", "get-face-detection": "GetFaceDetection"}
# The runner records a job's progress every 2 seconds; polling faster would show nothing new.
POLL_SECONDS = 1.0


def register(session: Session, transport: Transport) -> None:
    """Add ``--wait`` and ``--progress``/``--no-progress`` to the Get commands of video jobs."""

    def add_arguments(argument_table: dict[str, Any], **_: Any) -> None:
        for name, text in (
            (
                "wait",
                "facesearch only: wait until the job is no longer IN_PROGRESS, then print the "
                "usual output.",
            ),
            (
                "progress",
                "With --wait: show the job's progress on stderr (default: when stderr is a "
                "terminal).",
            ),
            ("no-progress", "With --wait: never show the progress bar."),
        ):
            CustomArgument(name, help_text=f"<p>{text}</p>", action="store_true").add_to_arg_table(
                argument_table
            )

    def run(
        call_parameters: dict[str, Any],
        parsed_args: Namespace,
        parsed_globals: Namespace,
        event_name: str,
        **_: Any,
    ) -> int | None:
        command = event_name.rsplit(".", 1)[-1]
        if command not in COMMANDS or not getattr(parsed_args, "wait", False):
            return None
        if getattr(parsed_args, "generate_cli_skeleton", None):
            return None
        show = not parsed_args.no_progress and (parsed_args.progress or sys.stderr.isatty())
        client = transport.client(parsed_globals)
        wait_for_job(
            getattr(client, xform_name(COMMANDS[command])),
            call_parameters["JobId"],
            _Bar(show),
        )
        return None  # the command now runs as without --wait

    for command in COMMANDS:
        # botocore-stubs type a handler as taking **kwargs only; botocore passes these by name.
        session.register(
            f"building-argument-table.rekognition.{command}",
            add_arguments,  # type: ignore[arg-type]
        )
    session.get_component("event_emitter").register_last("calling-command.*", run)


def wait_for_job(get: Any, job_id: str, bar: _Bar, pause: float = POLL_SECONDS) -> str | None:
    """Poll ``get`` (a Get operation of the client) until the job is no longer IN_PROGRESS; its
    final JobStatus, or None if the call failed (the caller's own call reports why)."""
    try:
        while True:
            answer = get(JobId=job_id, MaxResults=1)
            status: str = answer["JobStatus"]
            if status != "IN_PROGRESS":
                bar.finish(status)
                return status
            bar.show(progress(answer), status)
            time.sleep(pause)
    except ClientError:
        bar.clear()
        return None
    except KeyboardInterrupt:
        bar.clear()
        raise


def progress(answer: dict[str, Any]) -> float | None:
    """A running job's share done in percent, from facesearch's response header (None from a
    service that does not send it)."""
    headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    value = next((v for k, v in headers.items() if k.lower() == PROGRESS_HEADER), None)
    try:
        return None if value is None else min(100.0, max(0.0, float(value)))
    except ValueError:
        return None


class _Bar:
    """A one-line progress bar on stderr; does nothing when disabled."""

    WIDTH = 30

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self._enabled = enabled
        self._stream = stream or sys.stderr

    def show(self, percent: float | None, status: str) -> None:
        if not self._enabled:
            return
        filled = 0 if percent is None else round(self.WIDTH * percent / 100)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        share = "" if percent is None else f" {percent:5.1f}%"
        self._stream.write(f"\r\x1b[K[{bar}]{share} {status}")
        self._stream.flush()

    def clear(self) -> None:
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._stream.flush()

    def finish(self, status: str) -> None:
        if self._enabled:
            self.show(100.0 if status == "SUCCEEDED" else None, status)
            self._stream.write("\n")
            self._stream.flush()
