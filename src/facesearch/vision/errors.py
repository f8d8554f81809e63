"""What vision raises: plain exceptions that say what went wrong, in no API's terms.

The service maps ``VisionError`` to Rekognition's error codes and messages
(service/context.py, ``rekognition_error``); ``ModelsMissingError`` is an installation problem
and reaches the caller as it is.
"""

from __future__ import annotations

from enum import Enum


class VisionError(Exception):
    """An input the analyser does not take."""


class ImageErrorKind(Enum):
    """Why an image was refused."""

    TOO_LARGE = "too large"  # bytes over the limit, or pixels over the decompression-bomb bar
    INVALID_FORMAT = "invalid format"  # not JPEG or PNG, empty, undecodable or truncated
    TOO_SMALL = "too small"  # a side under the least the detector works on


class ImageError(VisionError):
    """An image that cannot be analysed; ``kind`` says why. An image too small also gives its
    ``size`` (width, height in pixels, EXIF-corrected) and the ``min_side`` it falls under."""

    def __init__(
        self,
        kind: ImageErrorKind,
        message: str,
        *,
        size: tuple[int, int] | None = None,
        min_side: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.size = size
        self.min_side = min_side

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable (a process pool sends it back to its caller): Exception's own pickling
        # would call __init__ with the message alone.
        return (type(self), (self.kind, str(self)), {"size": self.size, "min_side": self.min_side})


class UnknownFaceModelError(VisionError):
    """A face model version this build does not have (``known``: the versions it has)."""

    def __init__(self, version: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown face model version {version!r} (this build has {known})")
        self.version = version
        self.known = known

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.version, self.known))


class ModelsMissingError(RuntimeError):
    """A model file is missing or corrupt: an installation problem, not a bad input. The
    message names the command that installs the models."""
