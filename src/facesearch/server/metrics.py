"""``GET /metrics``: the server's counters in Prometheus' text format (prometheus_client).

Requests by operation and outcome, latency per operation and per stage of the work (decode,
detect, landmarks, embed, attributes, search), the image queue's depth and refusals, the faces
and users of each collection and the stored-video jobs by status (read from the store at scrape
time), the frames and seconds of video analysed, the models' load time, and the store's read
replicas: up or down, their lag, and the reads each answered.
Each App has its own registry, so several servers in one process (tests) never mix figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from facesearch import stages
from facesearch.store import ReadReplicas

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# From a cached list call (about a millisecond) to an IndexFaces of a large group photo.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

CollectionSizes = Callable[[], Iterable[tuple[str, str, int, int]]]


class VideoJobsSource(Protocol):
    """What the video metrics read (service/video_runner.VideoJobs)."""

    frames_analysed: int
    video_seconds_analysed: float

    def job_counts(self) -> dict[str, int]: ...


class Metrics:
    """The figures of one server. ``collection_sizes`` yields (account id, collection id, faces,
    users) for every collection; ``queue_depth`` reads the image calls waiting or running."""

    def __init__(self, collection_sizes: CollectionSizes, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "facesearch_requests",
            "Requests by operation and outcome (OK or the error code).",
            ["operation", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facesearch_request_duration_seconds",
            "Time from a request's body received to its response, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "facesearch_stage_duration_seconds",
            "Time spent in each stage of the work behind requests.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "facesearch_rejected_requests",
            "Requests refused before any work: image queue full, or a key over its rate.",
            ["reason"],
            registry=self.registry,
        )
        queue = Gauge(
            "facesearch_image_queue_depth",
            "Image operations waiting for or holding an analysis thread.",
            registry=self.registry,
        )
        queue.set_function(queue_depth)
        self.model_load = Gauge(
            "facesearch_model_load_seconds",
            "Time the models took to load and get ready at start-up.",
            registry=self.registry,
        )
        self.registry.register(_CollectionCollector(collection_sizes))
        self._unwatch = stages.watch(
            lambda name, seconds: self.stages.labels(name).observe(seconds)
        )

    def watch_video_jobs(self, jobs: VideoJobsSource) -> None:
        """Report stored-video jobs by state and the frames and seconds of video analysed."""
        self.registry.register(_VideoJobsCollector(jobs))

    def watch_store_replicas(self, status: Callable[[], ReadReplicas]) -> None:
        """Report the store's read replicas (nothing when it has none)."""
        self.registry.register(_ReplicasCollector(status))

    def observe(self, operation: str, code: str | None, seconds: float) -> None:
        """Count one request and its latency (``code`` None when it succeeded)."""
        self.requests.labels(operation, code or "OK").inc()
        self.latency.labels(operation).observe(seconds)

    def render(self) -> bytes:
        """The text exposition of every figure."""
        return generate_latest(self.registry)

    def close(self) -> None:
        """Stop timing stages for this server."""
        self._unwatch()


class _VideoJobsCollector(Collector):
    """Stored-video jobs by state (every process's, from the store) and this process's work."""

    def __init__(self, jobs: VideoJobsSource) -> None:
        self._jobs = jobs

    def describe(self) -> list[Any]:
        return []  # read from the store at each scrape, never at registration

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        states = GaugeMetricFamily(
            "facesearch_video_jobs",
            "Stored-video jobs kept (7 days) by status, every process's.",
            labels=["status"],
        )
        for status, count in sorted(self._jobs.job_counts().items()):
            states.add_metric([status], count)
        yield states
        yield CounterMetricFamily(
            "facesearch_video_frames_analysed",
            "Video frames analysed by this process.",
            self._jobs.frames_analysed,
        )
        yield CounterMetricFamily(
            "facesearch_video_seconds_analysed",
            "Seconds of video analysed by this process (its rate: video seconds per second).",
            self._jobs.video_seconds_analysed,
        )


class _CollectionCollector(Collector):
    def __init__(self, sizes: CollectionSizes) -> None:
        self._sizes = sizes

    def describe(self) -> list[Any]:
        return []  # read from the store at each scrape, never at registration

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["account_id", "collection_id"]
        faces = GaugeMetricFamily(
            "facesearch_collection_faces", "Faces per collection.", None, labels
        )
        users = GaugeMetricFamily(
            "facesearch_collection_users", "Users per collection.", None, labels
        )
        for account_id, collection_id, face_count, user_count in self._sizes():
            faces.add_metric([account_id, collection_id], face_count)
            users.add_metric([account_id, collection_id], user_count)
        yield faces
        yield users


class _ReplicasCollector(Collector):
    """The read replicas, as this process last measured them (every half second)."""

    def __init__(self, status: Callable[[], ReadReplicas]) -> None:
        self._status = status

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        status = self._status()
        if not status.replicas:
            return
        labels = ["replica"]
        up = GaugeMetricFamily(
            "facesearch_store_replica_up",
            "1 while reads may use the replica, else 0.",
            None,
            labels,
        )
        lag_bytes = GaugeMetricFamily(
            "facesearch_store_replica_lag_bytes",
            "WAL written on the primary and not yet replayed by the replica (while measured).",
            None,
            labels,
        )
        lag_seconds = GaugeMetricFamily(
            "facesearch_store_replica_lag_seconds",
            "Age of the replica's last replayed commit while it has WAL left to replay, else 0.",
            None,
            labels,
        )
        reads = CounterMetricFamily(
            "facesearch_store_reads",
            "Reads a replica could answer, by who answered: a replica, or the primary (behind "
            "this process's own writes, or no replica up).",
            None,
            ["served_by"],
        )
        for replica in status.replicas:
            up.add_metric([replica.where], float(replica.up))
            if replica.lag_bytes is not None:
                lag_bytes.add_metric([replica.where], replica.lag_bytes)
            if replica.lag_seconds is not None:
                lag_seconds.add_metric([replica.where], replica.lag_seconds)
            reads.add_metric([replica.where], replica.reads)
        reads.add_metric(["primary"], status.primary_reads)
        yield from (up, lag_bytes, lag_seconds, reads)
