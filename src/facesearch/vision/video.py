"""Stored video: probing, streaming decode, sampling and face tracking of a video file.

Rekognition's stored-video operations accept H.264 in MP4 or MOV. OpenCV's VideoCapture decodes
(its wheel's FFmpeg, LGPL), one frame at a time, so memory does not grow with the video's length;
OpenCV 5 applies the container's rotation itself (CAP_PROP_ORIENTATION_AUTO is on by default), so
frames and sizes are those of the displayed picture. Frames are analysed every ``interval_ms``
(Rekognition's examples are 200 ms apart); the frames in between are only decoded (``grab``, no
colour conversion). Faces are followed from sample to sample by tracking.Tracker: the whole frame
is searched for faces about once a second and when the picture jumps, the samples between only
around the faces being followed; a followed face is analysed whole (landmarks, embedding) when
it is new or in doubt and about once a second, and in between carried over from that analysis.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from facesearch.stages import stage
from facesearch.vision import mp4
from facesearch.vision.analyzer import Analyzer
from facesearch.vision.detector import CROP_INPUT, DETECT_MAX_PIXELS, Detection
from facesearch.vision.face import Face
from facesearch.vision.face_models import CURRENT, FaceModel
from facesearch.vision.pose import pose_from_five_points
from facesearch.vision.tracking import CHECK_CHANGE, MIN_IOU, Box, Tracker, iou, patch

# Rekognition's examples report faces 200 ms apart; a face seen for a fifth of a second is listed.
DEFAULT_INTERVAL_MS = 200
MAX_DURATION_MS = 6 * 3600 * 1000  # Rekognition's limit for a stored video
SUPPORTED = "H.264 in MP4 or MOV is supported"
# FFmpeg's codec names for the fourccs OpenCV reports (it gives a 4-letter codec name where
# FFmpeg's has four letters, else the stream's tag).
_CODEC_NAMES = {
    "h264": "h264",
    "avc1": "h264",
    "avc3": "h264",
    "hevc": "hevc",
    "hvc1": "hevc",
    "hev1": "hevc",
    "vp90": "vp9",
    "vp09": "vp9",
    "vp80": "vp8",
    "av01": "av1",
    "mp4v": "mpeg4",
    "fmp4": "mpeg4",
    "mjpg": "mjpeg",
    "jpeg": "mjpeg",
    "apcn": "prores",
    "apch": "prores",
    "mpg2": "mpeg2video",
    "theo": "theora",
}
# Sampled frames decoded ahead of the analysis: two keep the decoder busy, and memory flat.
DECODE_AHEAD = 2
# A decode that ends this much before the container's duration is a damaged file, not the end.
_EARLY_END_MS = 1000
# The whole frame is searched for faces at least this often (and whenever the picture jumps, at
# a cut or in fast motion: the tracker's CHECK_CHANGE); the samples between are searched only
# around the open tracks, in a square of REGION_SCALE times the face's longer side. A face that
# comes into view is therefore first seen within this time of its first sample.
FULL_DETECT_MS = 1000.0
REGION_SCALE = 2.0
# Two faces found in the regions of two tracks are one face from this overlap on.
SAME_FACE_IOU = 0.5
# A followed face is analysed whole (landmarks, pose, embedding: what a face search searches
# with) at least every REFRESH_MS, and sooner when it shows itself notably better than at its last
# whole analysis: its box grown by GROWN_BY in area (it came closer), its five points' yaw
# FRONTAL_BY degrees nearer to frontal, or its crop SHARPER_BY sharper (Quality.Sharpness, 0..100).
# In between it is carried over from that analysis (Analyzer.moved_face).
REFRESH_MS = 1000.0
GROWN_BY = 1.25
FRONTAL_BY = 15.0
SHARPER_BY = 10.0


class VideoError(Exception):
    """A video that cannot be analysed; ``message`` is the StatusMessage its job shows."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def corrupt() -> VideoError:
    """The error of a file that is cut short or damaged."""
    return VideoError("The video file is truncated or corrupt.")


@dataclass(frozen=True)
class VideoInfo:
    """What Rekognition's VideoMetadata says of a video; sizes of the displayed frame."""

    codec: str  # FFmpeg's codec name: "h264"
    format: str  # FFmpeg's container name: "QuickTime / MOV" (for MP4 and MOV alike)
    duration_ms: int
    frame_rate: float
    width: int
    height: int
    color_range: str  # "FULL" or "LIMITED"


@dataclass
class TrackedFace:
    """A face of a sampled frame; ``index`` follows one person through the video (Rekognition's
    Person.Index): the same face tracked from sample to sample keeps it, a new face gets the
    next one, and a cut (shot change) never carries an index over to a different person."""

    index: int
    face: Face  # geometry in ratios of the displayed frame
    # Analysed whole in this sample (its own landmarks and embedding); else carried over from its
    # track's last whole analysis (the same embedding: a search of it would find the same).
    fresh: bool = True


@dataclass
class SampledFrame:
    """The faces of one analysed frame, ``timestamp_ms`` from the start of the video."""

    timestamp_ms: int
    faces: list[TrackedFace]


def _codec_name(fourcc: int) -> str:
    tag = fourcc.to_bytes(4, "little").decode("latin-1").strip("\0 ").lower()
    return _CODEC_NAMES.get(tag, tag or "unknown")


def _open(path: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise corrupt()
    return capture


def probe(path: str) -> VideoInfo:
    """The metadata of a video file; VideoError for what Rekognition does not accept (a codec
    other than H.264, a container other than MP4/MOV, over 6 hours) or cannot read (a file cut
    short or damaged)."""
    try:
        container = mp4.read_container(path)
    except OSError as error:
        raise VideoError(f"The video file cannot be read: {error.strerror or error}.") from None
    if container.truncated:
        raise corrupt()
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            if container.format is None:
                raise VideoError(f"Unsupported format: {container.description}. {SUPPORTED}.")
            raise corrupt()
        codec = _codec_name(int(capture.get(cv2.CAP_PROP_FOURCC)))
        if codec != "h264":
            raise VideoError(f"Unsupported codec: {codec} in {container.description}. {SUPPORTED}.")
        if container.format is None:
            raise VideoError(
                f"Unsupported container: {container.description} (H.264 inside). {SUPPORTED}."
            )
        frame_rate = float(capture.get(cv2.CAP_PROP_FPS))
        frames = float(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if not (frame_rate > 0 and frames > 0 and width > 0 and height > 0):
        raise corrupt()
    duration_ms = container.duration_ms or round(frames * 1000 / frame_rate)
    if duration_ms > MAX_DURATION_MS:
        raise VideoError("The video is longer than Rekognition's limit of 6 hours.")
    return VideoInfo(
        codec=codec,
        format=container.format,
        duration_ms=duration_ms,
        frame_rate=frame_rate,
        width=width,
        height=height,
        color_range="FULL" if container.full_range else "LIMITED",
    )


def analyze_video(
    path: str,
    analyzer: Analyzer,
    *,
    attributes: bool = False,
    face_model: FaceModel | None = None,
    interval_ms: int = DEFAULT_INTERVAL_MS,
    progress: Callable[[float], None] | None = None,
    look_again: Callable[[int], bool] | None = None,
) -> Iterator[SampledFrame]:
    """The faces of ``path``'s frames every ``interval_ms`` (the first frame, then the first at
    or after each multiple), tracked: one SampledFrame per analysed frame, in order, streamed as
    decoded. ``attributes`` as Analyzer.analyze; embeddings are ``face_model``'s (default:
    CURRENT). ``progress`` gets the share of the video done (0..1) after each sample.
    ``look_again(index)``, asked for a face that would be carried over, True analyses it whole
    (fresh) anyway: a face search looks again at a person whose best match so far fell just
    short of its threshold.

    Raises VideoError (probe's, or a decode that ends well before the video's duration)."""
    info = probe(path)
    follower = _Follower(analyzer, face_model or CURRENT, attributes, look_again)
    for position, rgb in _sampled_frames(path, info, interval_ms):
        faces = follower.faces(rgb, position)
        del rgb
        yield SampledFrame(timestamp_ms=round(position), faces=faces)
        if progress is not None:
            progress(min(1.0, position / info.duration_ms))
    if progress is not None:
        progress(1.0)


@dataclass
class _Analysed:
    """A track's last whole analysis: what the samples after it are carried over from."""

    face: Face
    points: np.ndarray  # its detection's five points, pixels
    area: float  # its box's, pixels
    yaw: float  # |Yaw| of its five points (pose_from_five_points), degrees
    timestamp_ms: float


class _Follower:
    """The faces of a video's samples, in order: detection (the whole frame, or around the open
    tracks), tracking, and each face's analysis, whole or carried over."""

    def __init__(
        self,
        analyzer: Analyzer,
        face_model: FaceModel,
        attributes: bool,
        look_again: Callable[[int], bool] | None,
    ) -> None:
        self._analyzer = analyzer
        self._model = face_model
        self._attributes = attributes  # every face analysed whole: attributes are not carried
        self._look_again = look_again
        self._tracker = Tracker(face_model)
        self._whole_ms: float | None = None  # when the whole frame was last searched
        self._analysed: dict[int, _Analysed] = {}

    def _detect(self, rgb: np.ndarray, position: float, change: float) -> list[Detection]:
        live = self._tracker.live()
        if (
            self._whole_ms is None
            or position - self._whole_ms >= FULL_DETECT_MS
            or change > CHECK_CHANGE
            # So many faces that their regions would cost more than the whole frame.
            or len(live) * CROP_INPUT**2 >= DETECT_MAX_PIXELS
        ):
            self._whole_ms = position
            return self._analyzer.detect_frame(rgb)[0]
        if not live:
            return []
        height, width = rgb.shape[:2]
        regions = [_region(box, width, height) for _, box in live]
        found: list[Detection] = []
        for (_, box), detections in zip(
            live, self._analyzer.detect_frame(rgb, regions), strict=True
        ):
            # The face of the track's region is the one on its last box; others (a neighbour
            # cut by the region's edge) wait for the next look at the whole frame.
            scored = [(iou(box, _ratios(d, width, height)), d) for d in detections]
            overlap, best = max(scored, key=lambda s: s[0], default=(0.0, None))
            if best is None or overlap < MIN_IOU:
                continue
            mine = _ratios(best, width, height)
            if all(iou(mine, _ratios(d, width, height)) < SAME_FACE_IOU for d in found):
                found.append(best)
        return found

    def faces(self, rgb: np.ndarray, position: float) -> list[TrackedFace]:
        """The tracked faces of the sample ``rgb`` at ``position`` (ms)."""
        with stage("track"):
            change = self._tracker.look(rgb, position)
        detections = self._detect(rgb, position, change)
        height, width = rgb.shape[:2]
        with stage("track"):
            boxes = [_ratios(d, width, height) for d in detections]
            patches = [patch(rgb, box) for box in boxes]
        # A face in doubt is compared without the landmark network (aligned on its five
        # points); confirmed, it is carried over like any other.
        tracked = self._tracker.update(
            boxes,
            patches,
            position,
            lambda f: self._analyzer.detection_embedding(rgb, detections[f], self._model),
        )
        out = []
        for detection, box, face_patch, continued in zip(
            detections, boxes, patches, tracked, strict=True
        ):
            area = float(detection.box[2] * detection.box[3])
            yaw = abs(pose_from_five_points(detection.points, width, height).yaw)
            last = None if continued is None else self._analysed.get(continued)
            moved = None
            if not (
                continued is None
                or last is None
                or self._attributes
                or position - last.timestamp_ms >= REFRESH_MS
                or area > GROWN_BY * last.area
                or yaw < last.yaw - FRONTAL_BY
                or (self._look_again is not None and self._look_again(continued))
            ):
                moved = self._analyzer.moved_face(
                    rgb, last.face, last.points, detection, self._model
                )
                if moved.quality.sharpness >= last.face.quality.sharpness + SHARPER_BY:
                    moved = None
            if continued is not None and moved is not None:
                out.append(TrackedFace(continued, moved, fresh=False))
                continue
            face = self._analyzer.frame_face(
                rgb, detection, attributes=self._attributes, face_model=self._model
            )
            index = continued
            if index is None:  # a new track, its embedding the whole analysis's
                index = self._tracker.start(box, face_patch, face.embedding, position)
            self._analysed[index] = _Analysed(face, detection.points, area, yaw, position)
            out.append(TrackedFace(index, face, fresh=True))
        open_tracks = {index for index, _ in self._tracker.live()}
        self._analysed = {i: a for i, a in self._analysed.items() if i in open_tracks}
        return out


def _ratios(detection: Detection, width: int, height: int) -> Box:
    x, y, w, h = (float(v) for v in detection.box)
    return x / width, y / height, w / width, h / height


def _region(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel square of REGION_SCALE times a box's longer side around its centre, clipped
    to the frame."""
    side = REGION_SCALE * max(box[2] * width, box[3] * height)
    cx, cy = (box[0] + box[2] / 2) * width, (box[1] + box[3] / 2) * height
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(width, int(np.ceil(cx + side / 2))), min(height, int(np.ceil(cy + side / 2)))
    return x0, y0, x1, y1


def _sampled_frames(
    path: str, info: VideoInfo, interval_ms: int
) -> Iterator[tuple[float, np.ndarray]]:
    """(timestamp in ms, RGB frame) of the first frame and of the first at or after each
    following multiple of ``interval_ms``, decoded on a thread of their own while the caller
    analyses the previous ones (at most DECODE_AHEAD frames wait, so memory stays flat).
    VideoError if decoding ends well before the video's duration."""
    ready: queue.Queue[tuple[float, np.ndarray] | BaseException | None] = queue.Queue(DECODE_AHEAD)
    stop = threading.Event()

    def put(item: tuple[float, np.ndarray] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for item in _decode(path, info, interval_ms):
                if not put(item):
                    return
            put(None)
        except BaseException as error:  # handed to the caller, raised there
            put(error)

    worker = threading.Thread(target=decode, name="video-decode", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _decode(path: str, info: VideoInfo, interval_ms: int) -> Iterator[tuple[float, np.ndarray]]:
    capture = _open(path)
    try:
        next_ms, last_ms = 0.0, 0.0
        while True:
            with stage("decode"):
                if not capture.grab():
                    break
                position = last_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
                if position + 0.5 < next_ms:  # half a millisecond: timestamps are rounded
                    continue
                ok, bgr = capture.retrieve()
                if not ok:
                    raise corrupt()
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                del bgr
            next_ms = (math.floor((position + 0.5) / interval_ms) + 1) * interval_ms
            yield position, rgb
        if last_ms + _EARLY_END_MS < info.duration_ms - 1000 / info.frame_rate:
            raise corrupt()
    finally:
        capture.release()
