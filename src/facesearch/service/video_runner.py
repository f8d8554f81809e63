"""Who runs stored-video jobs: worker threads in a server process, or the embedded runner.

Jobs live in the store (store/jobs.py), so any process may run any job. A server starts
``VideoJobs.start_workers(n)``: each worker thread claims a waiting job, runs it (video_job.py) at
a lower CPU priority than the image calls beside it, and looks again, also taking over jobs whose
owner stopped beating (its process died). Without a server (``facesearch.client()``, the
``facesearch`` CLI) a Start call spawns the runner, ``python -m facesearch.service.video_runner``:
a detached process that outlives the command that started the job, works every claimable job of
the store and exits when none is left. One runner per data directory at a time (a lock file);
a Get call of an unfinished job that nobody works on spawns one again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from facesearch.service.notify import notify
from facesearch.store.jobs import IN_PROGRESS, JOB_TTL_SECONDS, WAITING, JobRecord

if TYPE_CHECKING:
    from facesearch.service.context import State

log = logging.getLogger("facesearch.video")

# A job whose owner has not beaten for this long is taken over (video_job.HEARTBEAT_SECONDS is
# its rhythm); after MAX_ATTEMPTS claims it ends FAILED.
STALE_SECONDS = float(os.environ.get("FACESEARCH_VIDEO_STALE_SECONDS", "30"))
MAX_ATTEMPTS = 3
# How often an idle worker looks for jobs that other processes stored or abandoned.
POLL_SECONDS = 2.0
# How much lower than image calls a job runs (Linux nice increment of its thread).
NICE = 10
RUNNER_LOCK = "video-runner.lock"
RUNNER_LOG = "video-runner.log"


def _owner() -> str:
    """A name for this worker, unique across processes and machines."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lower_priority() -> None:
    """Make the calling thread (and threads it starts) yield the CPU to image calls."""
    # Not Linux, or not allowed: it runs at the usual priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class VideoJobs:
    """The service's side of running jobs (``State.video_jobs``).

    ``data_dir`` holds the runner's lock file and log; ``store_url`` is what a runner process
    opens (None: the embedded store in ``data_dir``); ``spawn`` False never starts a runner.
    """

    def __init__(
        self, state: State, data_dir: Path, store_url: str | None, spawn: bool = True
    ) -> None:
        self.state = state
        self.data_dir = data_dir
        self.store_url = store_url
        self.spawn = spawn
        # This process's work, for monitoring: frames analysed, seconds of video covered.
        self.frames_analysed = 0
        self.video_seconds_analysed = 0.0
        self._workers: list[threading.Thread] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._runner: subprocess.Popen[bytes] | None = None

    # What the operations call

    def submitted(self) -> None:
        """A job was stored: wake a worker, or start a runner."""
        if self._workers:
            self._wake.set()
        else:
            self.ensure_runner()

    def check(self, job: JobRecord) -> None:
        """An unfinished job was looked at: if nobody works on it, start a runner."""
        if self._workers:
            return
        stale = job.heartbeat_at is None or job.heartbeat_at < time.time() - STALE_SECONDS
        if job.status == WAITING or stale:
            self.ensure_runner()

    # Worker threads (a server)

    def start_workers(self, count: int) -> None:
        """Run jobs on ``count`` threads of this process until :meth:`close`."""
        for number in range(count):
            worker = threading.Thread(
                target=self._work, name=f"facesearch-video_{number}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        _lower_priority()
        owner = _owner()
        next_expiry = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_expiry:
                    self.state.store.expire_jobs(time.time() - JOB_TTL_SECONDS)
                    next_expiry = time.monotonic() + 3600
                if not self.run_one(owner):
                    self._wake.wait(POLL_SECONDS)
                    self._wake.clear()
            except Exception:  # the store is down, say: log it, wait, try again
                log.exception("video worker: cannot look for jobs")
                self._stop.wait(POLL_SECONDS)

    def run_one(self, owner: str) -> bool:
        """Claim and run one job; False if there was none."""
        from facesearch.service.video_job import run_job

        # A job failed for its owners' repeated deaths is published like any other that ends.
        job = self.state.store.claim_job(
            owner, time.time() - STALE_SECONDS, MAX_ATTEMPTS, gave_up=notify
        )
        if job is None:
            return False
        log.info("video job %s (%s) started by %s", job.job_id, job.api, owner)
        ended = run_job(self.state, job, owner, self._stop.is_set, self._count)
        if ended is not None:
            log.info("video job %s %s", ended.job_id, ended.status)
            notify(ended)
        return True

    def _count(self, frames: int, seconds: float) -> None:
        with self._lock:
            self.frames_analysed += frames
            self.video_seconds_analysed += seconds

    def job_counts(self) -> dict[str, int]:
        """The store's jobs by state, as the API names them (waiting ones are IN_PROGRESS)."""
        counts = self.state.store.job_counts()
        counts[IN_PROGRESS] = counts.get(IN_PROGRESS, 0) + counts.pop(WAITING, 0)
        return counts

    def close(self) -> None:
        """Stop the workers: a job in progress goes back to waiting, for another process."""
        self._stop.set()
        self._wake.set()
        for worker in self._workers:
            worker.join()
        self._workers = []

    # The embedded runner

    def ensure_runner(self) -> None:
        """Start a runner process, unless this process's last one is still running."""
        if not self.spawn:
            return
        with self._lock:
            if self._runner is not None and self._runner.poll() is None:
                return
            if _runner_active(self.data_dir):
                return  # it looks for jobs again before it leaves
            env = dict(os.environ, FACESEARCH_DATA_DIR=str(self.data_dir))
            env.pop("FACESEARCH_STORE", None)
            if self.store_url is not None:
                env["FACESEARCH_STORE"] = self.store_url  # not on the command line: ps shows it
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with open(self.data_dir / RUNNER_LOG, "ab") as output:
                self._runner = subprocess.Popen(
                    [sys.executable, "-m", "facesearch.service.video_process"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,  # survives the command (and its terminal) ending
                    close_fds=True,
                )
            # Reap it when it ends, so that a long-lived process leaves no zombie behind.
            threading.Thread(target=self._runner.wait, daemon=True).start()


def _runner_active(data_dir: Path) -> bool:
    """Whether a runner holds the data directory's runner lock now."""
    try:
        with open(data_dir / RUNNER_LOCK, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True


def run_runner(data_dir: Path, store_url: str | None) -> int:
    """The runner process's work: every claimable job of the store, one at a time, then exit.

    Holds ``<data_dir>/video-runner.lock`` while it works; a second runner finds it taken and
    leaves at once. After letting it go, it looks once more for jobs (one may have been stored
    while it was leaving, by a caller that saw it still running) and goes on if there are."""
    from facesearch.service import RekognitionService

    os.nice(NICE)
    data_dir.mkdir(parents=True, exist_ok=True)
    service = RekognitionService(data_dir, store=store_url, video_runner=False)
    jobs = service.video_jobs
    owner = _owner()
    try:
        with open(data_dir / RUNNER_LOCK, "a+") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return 0  # another runner works here; it looks again before it leaves
                try:
                    service.state.store.expire_jobs(time.time() - JOB_TTL_SECONDS)
                    while jobs.run_one(owner):
                        pass
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                if not service.state.store.has_claimable_job(time.time() - STALE_SECONDS):
                    return 0
    finally:
        service.close()
