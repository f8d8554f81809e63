"""What every operation handler receives: the service's state and the caller's account."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from facesearch.defaults import DEFAULT_REGION
from facesearch.errors import RekognitionError, invalid_parameter, not_found
from facesearch.index import CollectionSearch, DatabaseSearches, Searches, SearchIndexes
from facesearch.service.tokens import TokenCodec
from facesearch.store import CollectionRecord, Store
from facesearch.store.jobs import JobRecord
from facesearch.vision.errors import ImageError, ImageErrorKind, UnknownFaceModelError, VisionError
from facesearch.vision.face_models import CURRENT, FaceModel

if TYPE_CHECKING:
    from facesearch.vision.analyzer import AnalyzedImage, Analyzer

# Rekognition's image size limits: 5 MiB of raw bytes in the request, 15 MB for an S3 object.
BYTES_IMAGE_MAX_BYTES = 5 * 1024 * 1024
S3_IMAGE_MAX_BYTES = 15 * 1024 * 1024
_IMAGE_NAMESPACE = uuid.UUID("6f1f8f4e-4a43-4c8e-9a57-2f7f0c1d7e10")


def rekognition_error(error: VisionError) -> RekognitionError:
    """The error Rekognition gives for what vision refused (an image, a face model version)."""
    match error:
        case ImageError(kind=ImageErrorKind.TOO_LARGE):
            return RekognitionError("ImageTooLargeException", "Image size is too large.")
        case ImageError(kind=ImageErrorKind.INVALID_FORMAT):
            return RekognitionError(
                "InvalidImageFormatException", "Request has invalid image format."
            )
        case ImageError(kind=ImageErrorKind.TOO_SMALL, size=(width, height), min_side=least):
            return invalid_parameter(
                f"Image dimensions {width}x{height} are below the minimum of {least} pixels "
                "per side."
            )
        case UnknownFaceModelError(version=version, known=known):
            return invalid_parameter(
                f"Face model version {version} is unknown to this facesearch, which runs "
                f"{', '.join(known)}. Upgrade facesearch to use this collection."
            )
    return invalid_parameter(str(error))


@dataclass(frozen=True)
class ImageInput:
    """Image bytes from the request or from S3, with the size limit of where they came from."""

    data: bytes
    max_bytes: int

    @property
    def image_id(self) -> str:
        """Rekognition's ImageId: the same image always gets the same id."""
        return str(uuid.uuid5(_IMAGE_NAMESPACE, hashlib.sha256(self.data).hexdigest()))

    def analyze(
        self,
        analyzer: Analyzer,
        attributes: bool = False,
        face_model: FaceModel | None = None,
        max_faces: int | None = None,
    ) -> AnalyzedImage:
        """Analyse with ``face_model`` (a collection's), or the current model when None; the
        ``max_faces`` largest faces, or every one. Rekognition's errors for a bad image."""
        try:
            return analyzer.analyze(
                self.data,
                max_bytes=self.max_bytes,
                attributes=attributes,
                face_model=face_model or CURRENT,
                max_faces=max_faces,
            )
        except VisionError as error:
            raise rekognition_error(error) from None


class VideoJobQueue(Protocol):
    """What the video operations need of whoever runs the jobs (service.video_runner)."""

    def submitted(self) -> None:
        """A job was stored: see that somebody runs it."""

    def check(self, job: JobRecord) -> None:
        """An unfinished job was looked at: if nobody works on it, see that somebody does."""


@dataclass
class State:
    """Process-wide state shared by every call: the store, the models, the search indexes."""

    store: Store
    analyzer_factory: Callable[[], Analyzer]
    image_fetchers: dict[str, Callable[[dict[str, Any]], bytes]] = field(default_factory=dict)
    region: str = field(default_factory=lambda: os.environ.get("FACESEARCH_REGION", DEFAULT_REGION))
    # Who runs stored-video jobs (the service sets it): this process's workers or a runner.
    video_jobs: VideoJobQueue | None = None
    # Where searches run: "index" (each process's in-memory indexes) or "database" (inside
    # PostgreSQL: the process holds no index).
    search_mode: str = "index"
    # Where the search indexes are kept on local disk (None: only in memory).
    index_dir: Path | None = None

    @cached_property
    def analyzer(self) -> Analyzer:
        return self.analyzer_factory()

    @cached_property
    def tokens(self) -> TokenCodec:
        return TokenCodec(self.store.secret())

    @cached_property
    def indexes(self) -> Searches:
        if self.search_mode == "database":
            return DatabaseSearches(self.store)
        return SearchIndexes(self.store, self.index_dir)

    def index(self, collection: CollectionRecord) -> CollectionSearch:
        """The collection's search, caught up with every write the record has seen."""
        return self.indexes.get(collection)


@dataclass
class Context:
    """One call: the shared state plus who is calling."""

    state: State
    account_id: str
    operation: str
    region: str

    @property
    def store(self) -> Store:
        return self.state.store

    def write_lock(self) -> AbstractContextManager[None]:
        """Held across a write and the checks that guard it (e.g. "this face has no user"), by
        every thread and process that shares the store. Searches do not take it."""
        return self.store.write_lock(self.account_id)

    def collection_arn(self, collection_id: str) -> str:
        return f"arn:aws:rekognition:{self.region}:{self.account_id}:collection/{collection_id}"

    def collection(self, collection_id: str) -> CollectionRecord:
        """The caller's collection in the region called, or ResourceNotFoundException."""
        record = self.store.get_collection(self.account_id, self.region, collection_id)
        if record is None:
            raise not_found(f"The collection id: {collection_id} does not exist")
        return record

    def load_image(self, image: dict[str, Any], field_name: str = "Image") -> ImageInput:
        """The bytes of an ``Image`` parameter (Bytes, or S3Object through a configured fetcher)."""
        if "Bytes" in image and "S3Object" in image:
            raise RekognitionError(
                "InvalidParameterException",
                f"{field_name}: give either Bytes or S3Object, not both",
            )
        if "Bytes" in image:
            return ImageInput(bytes(image["Bytes"]), BYTES_IMAGE_MAX_BYTES)
        if "S3Object" in image:
            fetch = self.state.image_fetchers.get("S3Object")
            if fetch is None:
                raise RekognitionError(
                    "InvalidS3ObjectException", "Reading images from S3 is not configured."
                )
            return ImageInput(fetch(image["S3Object"]), S3_IMAGE_MAX_BYTES)
        raise RekognitionError("InvalidParameterException", f"{field_name}: Bytes is required")

    def analyze(
        self,
        image: dict[str, Any],
        *,
        attributes: bool = False,
        field_name: str = "Image",
        face_model: FaceModel | None = None,
        max_faces: int | None = None,
    ) -> AnalyzedImage:
        """Decode and analyse an image once: faces, details and embeddings (``face_model``'s,
        or the current model's), of the ``max_faces`` largest faces or of every one."""
        loaded = self.load_image(image, field_name)
        return loaded.analyze(self.state.analyzer, attributes, face_model, max_faces)
