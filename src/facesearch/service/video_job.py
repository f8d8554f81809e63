"""Running one stored-video job: fetch the video, analyse it, store the results, end the job.

The video is streamed from S3 into a temporary file (never whole in memory; a local folder's file
is read where it lies), probed, then decoded and analysed a sampled frame at a time
(vision/video.py). Each tracked face becomes one result as Rekognition shapes it: for a face
search, a Person (Index, BoundingBox, Face with the default attributes) with the collection's
faces it matches, found by the same search as SearchFacesByImage; for a face detection, a Face
with the default or ALL attributes. Results go to the store in batches as they come, so memory
does not grow with the video's length.

What the video or its S3 object does wrong ends the job FAILED with a StatusMessage that says
what; a worker that loses the job (presumed dead and replaced) stops without writing more.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Generator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesearch.errors import RekognitionError
from facesearch.service.context import Context, State
from facesearch.service.details import bounding_box, face_detail
from facesearch.service.scoring import collection_model
from facesearch.service.search import face_matches
from facesearch.service.video import (
    DEFAULT_THRESHOLD,
    FACE_SEARCH,
    MAX_VIDEO_BYTES,
    video_source,
    video_too_large,
)
from facesearch.store.jobs import FAILED, SUCCEEDED, JobRecord, JobResult

if TYPE_CHECKING:
    from facesearch.vision.face import Face
    from facesearch.vision.video import SampledFrame, VideoInfo

log = logging.getLogger("facesearch.video")

# How often a running job tells the store it is alive (a job silent for video_runner's
# STALE_SECONDS is taken over), and how many results are written at once at most.
HEARTBEAT_SECONDS = 2.0
RESULTS_BATCH = 500
# The matching faces listed for each person seen (Rekognition documents no number).
MAX_FACE_MATCHES = 100
# A person whose best match so far is at most this far below the FaceMatchThreshold (on the
# Similarity scale) is analysed whole and searched at every sample until it matches, rather than
# about once a second (vision/video.py): its next look may well reach the threshold (a head
# turning), while a clear match or a clear stranger would only be found again.
NEAR_MISS = 10.0
# FaceDetail members Rekognition does not return for stored video.
_NOT_FOR_VIDEO = ("EyeDirection", "FaceOccluded")


class JobLost(Exception):
    """The job is no longer this worker's: another took it over, or it ended."""


class JobStopping(Exception):
    """This worker is stopping (its process shuts down): the job goes back to waiting."""


def video_metadata(info: VideoInfo) -> dict[str, Any]:
    """Rekognition's VideoMetadata of a probed video."""
    return {
        "Codec": info.codec,
        "DurationMillis": info.duration_ms,
        "Format": info.format,
        "FrameRate": info.frame_rate,
        "FrameHeight": info.height,
        "FrameWidth": info.width,
        "ColorRange": info.color_range,
    }


class _Progress:
    """The job's heartbeat and results, written to the store as the analysis goes."""

    def __init__(
        self, ctx: Context, job: JobRecord, owner: str, stopping: Callable[[], bool]
    ) -> None:
        self.store = ctx.store
        self.job = job
        self.owner = owner
        self.stopping = stopping
        self.share = 0.0
        self.frames = 0
        self.metadata: dict[str, Any] | None = None
        self._last_beat = time.monotonic()
        self._pending: list[JobResult] = []
        self._rank = 0

    def beat(self, share: float | None = None, *, now: bool = False) -> None:
        """Record progress; write it if a heartbeat is due. JobStopping or JobLost as they
        happen."""
        if share is not None:
            self.share = share
        if self.stopping():
            raise JobStopping
        if now or time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS:
            self.flush()
            ok = self.store.heartbeat_job(
                self.job, self.owner, round(self.share, 4), self.frames, self.metadata
            )
            self._last_beat = time.monotonic()
            if not ok:
                raise JobLost

    def add(self, person_index: int, payload: dict[str, Any]) -> None:
        self._rank += 1
        self._pending.append(JobResult(self._rank, person_index, payload))
        if len(self._pending) >= RESULTS_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            if not self.store.add_job_results(self.job, self.owner, self._pending):
                raise JobLost
            self._pending = []


def run_job(
    state: State,
    job: JobRecord,
    owner: str,
    stopping: Callable[[], bool] = lambda: False,
    analysed: Callable[[int, float], None] | None = None,
) -> JobRecord | None:
    """Run a job claimed by ``owner`` to its end; the ended job, or None if it was lost or
    handed back (``stopping()`` turned true). ``analysed(frames, seconds of video)`` counts
    the work as it is done."""
    ctx = Context(state, job.account_id, job.api, job.region)
    progress = _Progress(ctx, job, owner, stopping)
    try:
        # Closed on any exit, so that the temporary copy of the video goes at once.
        with closing(_analyse(ctx, job, progress)) as frames:
            position_ms = 0
            for timestamp_ms in frames:
                progress.frames += 1
                if analysed is not None:
                    analysed(1, max(0, timestamp_ms - position_ms) / 1000)
                position_ms = max(position_ms, timestamp_ms)
                progress.beat()
        progress.flush()
        return state.store.finish_job(job, owner, SUCCEEDED)
    except JobStopping:
        state.store.release_job(job, owner)
        log.info("video job %s handed back: this process is stopping", job.job_id)
        return None
    except JobLost:
        log.warning("video job %s was taken over by another process", job.job_id)
        return None
    except RekognitionError as error:
        return _fail(state, job, owner, error.message)
    except Exception as error:
        from facesearch.vision.video import VideoError

        if isinstance(error, VideoError):
            return _fail(state, job, owner, error.message)
        log.exception("video job %s failed", job.job_id)
        return _fail(state, job, owner, "Internal error while analysing the video.")


def _fail(state: State, job: JobRecord, owner: str, message: str) -> JobRecord | None:
    log.info("video job %s failed: %s", job.job_id, message)
    return state.store.finish_job(job, owner, FAILED, message)


def _analyse(ctx: Context, job: JobRecord, progress: _Progress) -> Generator[int, None, None]:
    """Fetch and analyse the video, storing each frame's results; yields each analysed frame's
    timestamp (ms)."""
    from facesearch.vision.video import analyze_video, probe

    source = video_source(ctx)
    s3object = job.params["Video"]["S3Object"]
    with tempfile.TemporaryDirectory(prefix="facesearch-video-") as folder:
        # A local folder's file is read where it lies; an S3 object is copied first.
        path = source.local_video(s3object, MAX_VIDEO_BYTES, video_too_large)
        if path is None:
            path = Path(folder) / "video"
            with path.open("wb") as file:
                source.download(
                    s3object, file, MAX_VIDEO_BYTES, video_too_large, lambda _: progress.beat()
                )
        progress.metadata = video_metadata(probe(str(path)))
        progress.beat(0.0, now=True)
        search = job.api == FACE_SEARCH
        face_model = collection = None
        if search:
            collection = ctx.collection(job.params["CollectionId"])
            face_model = collection_model(collection)
        attributes = not search and job.params.get("FaceAttributes") == "ALL"
        threshold = job.params.get("FaceMatchThreshold", DEFAULT_THRESHOLD)
        # Searched down to NEAR_MISS below the threshold, to know who fell just short.
        lowered = max(0.0, threshold - NEAR_MISS)
        search_params = {"FaceMatchThreshold": lowered, "MaxFaces": MAX_FACE_MATCHES}
        # The matches of each person of the previous sample (a face carried over from its
        # track's last whole analysis has that analysis's embedding, so the same matches), and
        # the persons whose best match so far fell short by less than NEAR_MISS.
        matched: dict[int, list[dict[str, Any]]] = {}
        near_misses: set[int] = set()
        frames = analyze_video(
            str(path),
            ctx.state.analyzer,
            attributes=attributes,
            face_model=face_model,
            progress=progress.beat,
            look_again=near_misses.__contains__,
        )
        for frame in frames:
            searched: dict[int, list[dict[str, Any]]] = {}
            for tracked in sorted(frame.faces, key=lambda t: t.index):
                if collection is not None:
                    matches = matched.get(tracked.index)
                    if tracked.fresh or matches is None:
                        embedding = tracked.face.embedding
                        found = face_matches(ctx, collection, embedding, search_params)
                        matches = [m for m in found if m["Similarity"] >= threshold]
                        if found and not matches:
                            near_misses.add(tracked.index)
                        else:
                            near_misses.discard(tracked.index)
                    searched[tracked.index] = matches
                    payload = _person(frame, tracked.index, tracked.face, matches)
                else:
                    payload = _detected(frame, tracked.face, attributes)
                progress.add(tracked.index, payload)
            matched = searched
            yield frame.timestamp_ms


def _person(
    frame: SampledFrame, index: int, face: Face, matches: list[dict[str, Any]]
) -> dict[str, Any]:
    """A GetFaceSearch PersonMatch; FaceMatches only where the person matched someone."""
    person: dict[str, Any] = {
        "Timestamp": frame.timestamp_ms,
        "Person": {
            "Index": index,
            "BoundingBox": bounding_box(face.box),
            "Face": _video_detail(face, None),
        },
    }
    if matches:
        person["FaceMatches"] = matches
    return person


def _detected(frame: SampledFrame, face: Face, attributes: bool) -> dict[str, Any]:
    """A GetFaceDetection FaceDetection."""
    return {
        "Timestamp": frame.timestamp_ms,
        "Face": _video_detail(face, ["ALL"] if attributes else None),
    }


def _video_detail(face: Face, attributes: list[str] | None) -> dict[str, Any]:
    detail = face_detail(face, attributes)
    for name in _NOT_FOR_VIDEO:
        detail.pop(name, None)
    return detail
