"""The analysis pipeline: decode once, detect, then per face landmarks, pose, quality, embedding
(and attributes on request). Everything an operation needs comes out of one ``analyze`` call, as
plain values (face.py)."""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesearch.stages import stage
from facesearch.vision import attributes, models
from facesearch.vision.age_gender import AgeGenderEstimator
from facesearch.vision.detector import DEFAULT_THREADS, Detection, YuNetDetector, confidence
from facesearch.vision.embedder import Embedder, SFaceEmbedder
from facesearch.vision.face import Attributes, Box, Face, Point, Quality
from facesearch.vision.face_models import CURRENT, FaceModel
from facesearch.vision.image import (
    LARGE_IMAGE_PIXELS,
    MAX_IMAGE_BYTES,
    decode_image,
    return_freed_memory,
)
from facesearch.vision.landmarks import FaceMesher, Mesh
from facesearch.vision.pose import believable, face_pose, head_pose
from facesearch.vision.quality import brightness, sharpness

# OpenCV 5's dnn warns on stderr, at every start, that its new engine ignores target settings:
# noise on every CLI call. Errors still show.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@dataclass
class AnalyzedImage:
    """An image's size (pixels, EXIF-corrected) and its faces, largest first."""

    width: int
    height: int
    faces: list[Face]


Blob = Callable[[models.Artifact | models.Derived], bytes]
# Threads of the networks for an analysis that has the machine to itself: the detector's
# default, two where the machine has them.
WIDE_THREADS = DEFAULT_THREADS


class _Networks:
    """The detection, landmark and embedding networks, on ``threads`` threads each (an
    embedding network per weights of the face models in use, built on first use)."""

    def __init__(self, blob: Blob, threads: int = 1) -> None:
        self.detector = YuNetDetector(blob(models.YUNET_TFLITE), threads)
        self.mesher = FaceMesher(blob(models.FACE_LANDMARKER), threads)
        self._blob = blob
        self._threads = threads
        self._embedders: dict[str, Embedder] = {}

    def embedder(self, face_model: FaceModel) -> Embedder:
        """The embedding network of ``face_model``'s weights."""
        weights = face_model.weights
        if weights not in self._embedders:
            model = self._blob(models.SFACE_WEIGHTS[weights])
            self._embedders[weights] = SFaceEmbedder(model, self._threads)
        return self._embedders[weights]


class _Runtime:
    """The networks of one thread: none of OpenCV's or TFLite's runners may be shared. Its own
    detection, landmark and embedding networks (one thread each) are built when it first runs
    beside another call (a call alone uses the shared wide ones), those of the ALL attributes
    on first use: most calls never need them."""

    def __init__(self, blob: Blob) -> None:
        self._blob = blob

    @functools.cached_property
    def own(self) -> _Networks:
        return _Networks(self._blob)

    @property
    def detector(self) -> YuNetDetector:
        return self.own.detector

    @property
    def mesher(self) -> FaceMesher:
        return self.own.mesher

    @functools.cached_property
    def emotions(self) -> attributes.EmotionClassifier:
        return attributes.EmotionClassifier(self._blob(models.EMOTION))

    @functools.cached_property
    def age_gender(self) -> AgeGenderEstimator:
        return AgeGenderEstimator(self._blob(models.AGE), self._blob(models.GENDER))


class Analyzer:
    """Thread-safe face analyser; models are read and verified once, runners built per thread."""

    face_model_version = CURRENT.version

    def __init__(self, models_dir: str | None = None) -> None:
        self._models_dir = models_dir
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        self._local = threading.local()
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._wide_lock = threading.Lock()  # held by the one call using the wide networks
        self._wide: _Networks | None = None
        self._forkable = False  # prepare_for_fork() was called: no thread pools, ever

    @contextmanager
    def _networks(self) -> Iterator[_Networks]:
        """The detection, landmark and embedding networks for this call: shared ones spread over
        WIDE_THREADS threads while it is the only analysis in flight, else the calling
        thread's own on one thread each. A network on two threads takes about 55 % of the time
        on one, but two calls at once each on two threads would only fight over the cores."""
        with self._in_flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        wide = (
            alone
            and WIDE_THREADS > 1
            and not self._forkable
            and self._wide_lock.acquire(blocking=False)
        )
        try:
            if not wide:
                yield self._runtime().own
            else:
                if self._wide is None:
                    self._wide = _Networks(self._blob, WIDE_THREADS)
                yield self._wide
        finally:
            if wide:
                self._wide_lock.release()
            with self._in_flight_lock:
                self._in_flight -= 1

    def _blob(self, artifact: models.Artifact | models.Derived) -> bytes:
        """A model file's verified bytes, read once per process (when first needed)."""
        with self._lock:
            if artifact.name not in self._blobs:
                directory = None if self._models_dir is None else Path(self._models_dir)
                self._blobs[artifact.name] = models.read_model(artifact, directory)
            return self._blobs[artifact.name]

    def check_ready(self) -> None:
        """Raise ModelsMissingError (naming the setup command) if a model is missing or corrupt."""
        for artifact in models.RUNTIME_MODELS:
            self._blob(artifact)
        self._runtime()
        with self._networks():  # builds the wide networks when alone, else this thread's own
            pass

    def prepare_for_fork(self) -> None:
        """Read every model, build this thread's networks on one thread each and run them once,
        so that a process forked from this one (the CLI's warm process, cli/warm_process.py)
        analyses at once. From now on this analyser never builds the wide networks: their
        thread pools, and OpenCV's, would not survive a fork (a child would wait forever on
        threads that only its parent has). OpenCV runs on one thread meanwhile, so its pool is
        started by each child, not here."""
        self._forkable = True
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            self.check_ready()  # every model read; this thread's own networks, never wide ones
            runtime = self._runtime()
            blank = np.zeros((480, 640, 3), np.uint8)
            runtime.detector.detect(blank)
            face = Detection(
                box=np.array([240.0, 160.0, 160.0, 200.0]),
                points=np.array(
                    [[280, 230], [360, 230], [320, 270], [290, 310], [350, 310]], float
                ),
                score=1.0,
            )
            runtime.own.mesher.mesh(blank, face)
            runtime.own.embedder(CURRENT).embed(np.zeros((112, 112, 3), np.uint8))
            _ = runtime.emotions, runtime.age_gender  # built too, for ALL attributes
        finally:
            cv2.setNumThreads(threads)

    def _runtime(self) -> _Runtime:
        runtime = getattr(self._local, "runtime", None)
        if runtime is None:
            runtime = self._local.runtime = _Runtime(self._blob)
        return runtime

    def analyze(
        self,
        image_bytes: bytes,
        *,
        max_bytes: int = MAX_IMAGE_BYTES,
        attributes: bool = False,
        face_model: FaceModel = CURRENT,
        max_faces: int | None = None,
    ) -> AnalyzedImage:
        """Decode and analyse an image once; ImageError for bad input (see image.py).
        Embeddings are ``face_model``'s: a collection's own version, for its faces to compare.
        ``max_faces`` keeps the largest faces only (else every face the detector found)."""
        with self._networks() as networks:
            with stage("decode"):
                rgb = decode_image(image_bytes, max_bytes=max_bytes)
            runtime = self._runtime()
            height, width = rgb.shape[:2]
            with stage("detect"):
                view, detections = View(rgb), networks.detector.detect(rgb)
                if max((d.score for d in detections), default=0.0) < SURE_SCORE:
                    view, detections = _second_look(networks.detector, view, detections)
            faces = [
                view.to_original(
                    self._face(runtime, networks, view, detection, attributes, face_model)
                )
                for detection in detections[:max_faces]
            ]
        if width * height > LARGE_IMAGE_PIXELS:
            del rgb, view  # the faces keep their crops only
            return_freed_memory()
        return AnalyzedImage(width=width, height=height, faces=faces)

    def detect_frame(
        self, rgb: np.ndarray, regions: list[tuple[int, int, int, int]] | None = None
    ) -> list[list[Detection]]:
        """The detections of one decoded video frame (RGB uint8 (H, W, 3), upright: the
        container's rotation applied): of the whole frame (one list) without ``regions``, else
        of each pixel region (x0, y0, x1, y1) on its own (a list per region), in the frame's
        pixels. Unlike ``analyze``, no second look at the frame turned: a video's frames stand
        as shown, and a frame without a face (most of a recording's) would pay three more
        detections."""
        with self._networks() as networks, stage("detect"):
            if regions is None:
                return [networks.detector.detect(rgb)]
            return [networks.detector.detect_in(rgb, region) for region in regions]

    def frame_face(
        self,
        rgb: np.ndarray,
        detection: Detection,
        *,
        attributes: bool = False,
        face_model: FaceModel = CURRENT,
    ) -> Face:
        """The whole analysis of one detected face of a video frame (as ``analyze`` does for
        each face of a photo): landmarks, pose, quality, attributes if asked, the embedding on
        first use."""
        with self._networks() as networks:
            return self._face(
                self._runtime(), networks, View(rgb), detection, attributes, face_model
            )

    def detection_embedding(
        self, rgb: np.ndarray, detection: Detection, face_model: FaceModel = CURRENT
    ) -> np.ndarray:
        """The embedding of a detected face aligned on the detector's five points, without the
        landmark network: enough to tell whether two video samples show one person (against
        the whole analysis's embedding of the same face it scored 91 to 100 on the face
        model's scale, on every face of the labelled clips), not for a search."""
        with self._networks() as networks:
            aligned = networks.embedder(face_model).align(rgb, detection.points)
        return self._embed(aligned, face_model)

    def moved_face(
        self,
        rgb: np.ndarray,
        earlier: Face,
        earlier_points: np.ndarray,
        detection: Detection,
        face_model: FaceModel = CURRENT,
    ) -> Face:
        """A face of a video frame followed from ``earlier``, its whole analysis (whose
        detection had the five points ``earlier_points``), without the landmark and embedding
        networks: the box and confidence are ``detection``'s, the landmarks ``earlier``'s moved
        by the similarity (shift, scale, turn in the picture) that takes ``earlier_points`` to
        ``detection.points``, the roll turned with them, yaw and pitch, presence and embedding
        ``earlier``'s, and the quality measured afresh (the crop aligned on the detector's
        points)."""
        height, width = rgb.shape[:2]
        move = _similarity(earlier_points, detection.points)
        landmarks = {}
        for name, mark in earlier.landmarks.items():
            z = move[0] * complex(mark.x * width, mark.y * height) + move[1]
            landmarks[name] = Point(x=z.real / width, y=z.imag / height)
        # The picture's y axis points down: a turn by +a in its coordinates is clockwise as
        # seen, and roll > 0 is counter-clockwise.
        turn = float(np.degrees(np.angle(move[0])))
        roll = (earlier.pose.roll - turn + 180) % 360 - 180
        x, y, w, h = (float(v) for v in detection.box)
        embedding = earlier.embedding
        with self._networks() as networks:
            embedder = networks.embedder(face_model)
            quality = _quality(View(rgb), embedder, detection.box, detection.points)
        return Face(
            box=Box(left=x / width, top=y / height, width=w / width, height=h / height),
            confidence=confidence(detection.score),
            landmarks=landmarks,
            pose=dataclasses.replace(earlier.pose, roll=roll),
            quality=quality,
            box_pixels=(x, y, w, h),
            presence=earlier.presence,
            embed=lambda: embedding,
        )

    def _face(
        self,
        runtime: _Runtime,
        networks: _Networks,
        view: View,
        detection: Detection,
        with_attributes: bool,
        face_model: FaceModel,
    ) -> Face:
        rgb = view.rgb
        height, width = rgb.shape[:2]
        x, y, w, h = (float(v) for v in detection.box)
        with stage("landmarks"):
            mesh: Mesh = networks.mesher.mesh(rgb, detection)
        # A mesh fitted to half a face (cut by the image edge) is not a head's: its points are
        # not used to align, and the pose comes from the detector's five points (pose.py).
        believed = believable(head_pose(mesh.points), detection.points)
        pose = face_pose(mesh.points, detection.points, width, height)
        five = (
            mesh.five_points() if face_model.alignment == "mesh" and believed else detection.points
        )
        embedder = networks.embedder(face_model)
        aligned = embedder.align(rgb, five)
        quality = _quality(view, embedder, detection.box, five, aligned)
        face_attributes = None
        if with_attributes:
            with stage("attributes"):
                x0, y0 = max(0, int(x)), max(0, int(y))
                x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
                shapes = networks.mesher.blendshapes(mesh)
                smile = attributes.smile(shapes)
                eyes_open = attributes.eyes_open(shapes)
                mouth_open = attributes.mouth_open(mesh.points)
                box_grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
                emotions = runtime.emotions.emotions(box_grey, np.array([x - x0, y - y0, w, h]))
                gaze = attributes.eye_direction(mesh.points, shapes)
                age_range, gender = runtime.age_gender.estimate(
                    rgb, mesh.points, detection.points, believed
                )
                face_attributes = Attributes(
                    smile, eyes_open, mouth_open, emotions, gaze, age_range, gender
                )
        return Face(
            box=Box(left=x / width, top=y / height, width=w / width, height=h / height),
            confidence=confidence(detection.score),
            landmarks=mesh.landmarks(width, height),
            pose=pose,
            quality=quality,
            box_pixels=(x, y, w, h),
            presence=mesh.presence,
            # The networks of the call that asks (possibly on another thread than this one).
            embed=lambda: self._embed(aligned, face_model),
            attributes=face_attributes,
        )

    def _embed(self, aligned: np.ndarray, face_model: FaceModel) -> np.ndarray:
        with stage("embed"), self._networks() as networks:
            embedder = networks.embedder(face_model)
            vector = embedder.embed(aligned)
            if not face_model.mirrored:
                return vector
            # The alignment template is symmetric about the crop's middle (within a pixel), so
            # the mirrored crop is the mirror image's face aligned the same way.
            total = vector + embedder.embed(np.ascontiguousarray(aligned[:, ::-1]))
            norm = float(np.linalg.norm(total))
            return total / norm if norm > 0 else vector


def _quality(
    view: View,
    embedder: Embedder,
    box: np.ndarray,
    five: np.ndarray,
    aligned: np.ndarray | None = None,
) -> Quality:
    """Brightness of the face's box (clipped to the image, in grey) and sharpness of its crop
    aligned on ``five`` (``aligned``, if made already)."""
    rgb = view.rgb
    height, width = rgb.shape[:2]
    x, y, w, h = (float(v) for v in box)
    if aligned is None:
        aligned = embedder.align(rgb, five)
    aligned_grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY)
    inside = None
    if x - w / 4 < 0 or y - h / 4 < 0 or x + w * 1.25 > width or y + h * 1.25 > height:
        # Near the edge the crop may reach past the image: mark what came from inside it.
        inside = embedder.align(view.white, five)[..., 0] > 0
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    box_grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return Quality(brightness=brightness(box_grey), sharpness=sharpness(aligned_grey, inside))


def _similarity(source: np.ndarray, target: np.ndarray) -> tuple[complex, complex]:
    """The least-squares similarity z -> a z + b (points as complex numbers) taking the
    (n, 2) points ``source`` to ``target``."""
    z = source[:, 0] + 1j * source[:, 1]
    w = target[:, 0] + 1j * target[:, 1]
    dz, dw = z - z.mean(), w - w.mean()
    spread = float(np.sum(np.abs(dz) ** 2))
    a = complex(np.sum(dw * np.conj(dz)) / spread) if spread > 0 else 1 + 0j
    return a, complex(w.mean() - a * z.mean())


class View:
    """The image the faces were found in: the decoded one, or a second look at it turned, with
    the way back to the decoded image's frame."""

    def __init__(self, rgb: np.ndarray, turn: int | None = None) -> None:
        self.rgb = rgb
        self.turn = turn  # the cv2.ROTATE_* that made rgb from the decoded image, if any

    @functools.cached_property
    def white(self) -> np.ndarray:
        """An all-white image of this view's size: aligned like a face, it shows which pixels
        of the crop came from inside the image (made once, for every face near an edge)."""
        return np.full(self.rgb.shape, 255, np.uint8)

    def _point(self, u: float, v: float) -> tuple[float, float]:
        """A point of this view (pixels) in the decoded image's frame."""
        height, width = self.rgb.shape[:2]  # this view's
        if self.turn == cv2.ROTATE_90_CLOCKWISE:
            return v, width - u
        if self.turn == cv2.ROTATE_90_COUNTERCLOCKWISE:
            return height - v, u
        if self.turn == cv2.ROTATE_180:
            return width - u, height - v
        return u, v

    def to_original(self, face: Face) -> Face:
        """``face`` with its geometry in the decoded image's frame."""
        if self.turn is None:
            return face
        height, width = self.rgb.shape[:2]
        out_w, out_h = (width, height) if self.turn == cv2.ROTATE_180 else (height, width)
        x, y, w, h = face.box_pixels
        (ax, ay), (bx, by) = self._point(x, y), self._point(x + w, y + h)
        box = (min(ax, bx), min(ay, by), abs(bx - ax), abs(by - ay))
        landmarks = {}
        for name, mark in face.landmarks.items():
            px, py = self._point(mark.x * width, mark.y * height)
            landmarks[name] = Point(x=px / out_w, y=py / out_h)
        # Turning the image clockwise stood up a face that leaned counter-clockwise (roll > 0).
        offset = {cv2.ROTATE_90_CLOCKWISE: 90, cv2.ROTATE_90_COUNTERCLOCKWISE: -90}.get(
            self.turn, 180
        )
        roll = (face.pose.roll + offset + 180) % 360 - 180
        return dataclasses.replace(
            face,
            box_pixels=box,
            box=Box(
                left=box[0] / out_w, top=box[1] / out_h, width=box[2] / out_w, height=box[3] / out_h
            ),
            landmarks=landmarks,
            pose=dataclasses.replace(face.pose, roll=roll),
        )


# Measured on the photos of faces/ (docs/vision.md): an upright face's best detection scores
# 0.88 or more in 99 % of photos, a face turned on its side 0.73 (median); and the upright view
# of a turned face always scored over 0.02 above the turned one, while no turned view of an
# upright photo ever did. So below SURE_SCORE the image is looked at again, turned.
SURE_SCORE = 0.9
BETTER_BY = 0.02
# A turned view must also be sure of its face: turned copies of the no-face photos gave false
# faces scoring 0.61 and 0.62, and the one upright photo of faces-calib that a turned view beat
# (a face under a cap) scored 0.845 turned; the turned faces of faces/ scored 0.87 or more.
SECOND_LOOK_MIN_SCORE = 0.85


def _second_look(
    detector: YuNetDetector, first: View, found: list[Detection]
) -> tuple[View, list[Detection]]:
    """The image turned a quarter either way and upside down: the view whose best face scores
    highest wins if it beats the first look by BETTER_BY and reaches SECOND_LOOK_MIN_SCORE.
    (Evening out an over-exposed photo's lightness with CLAHE was tried as well: it found no
    face in any of 24 over-exposed photos where the detector had found none.)"""
    views = [
        View(cv2.rotate(first.rgb, turn), turn)
        for turn in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180)
    ]
    best = (max((d.score for d in found), default=0.0) + BETTER_BY, first, found)
    for view in views:
        detections = detector.detect(view.rgb)
        score = max((d.score for d in detections), default=0.0)
        if score >= SECOND_LOOK_MIN_SCORE and score > best[0]:
            best = (score, view, detections)
    return best[1], best[2]


_analyzer: Analyzer | None = None
_analyzer_lock = threading.Lock()


def get_analyzer() -> Analyzer:
    """The process-wide analyser (models load lazily, on first use)."""
    global _analyzer
    with _analyzer_lock:
        if _analyzer is None:
            _analyzer = Analyzer()
        return _analyzer
