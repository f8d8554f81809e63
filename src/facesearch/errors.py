"""Rekognition errors: one exception type carrying the error code, message and HTTP status.

The codes are the error shapes of botocore's service model; every entry point (library client,
HTTP server, CLI) turns a :class:`RekognitionError` into what a Rekognition client expects.
"""

from __future__ import annotations

from functools import cache

from facesearch.model import service_model

# The service model carries no HTTP status for Rekognition's errors; AWS documents these as 5xx
# and every other one as 400.
_SERVER_ERRORS = {"InternalServerError": 500, "ThrottlingException": 500}


@cache
def error_codes() -> frozenset[str]:
    """The error codes the Rekognition service model declares."""
    return frozenset(shape.name for shape in service_model().error_shapes)


class RekognitionError(Exception):
    """An error Rekognition would return: ``code`` is one of the model's error shapes."""

    def __init__(self, code: str, message: str) -> None:
        if code not in error_codes():
            raise ValueError(f"{code!r} is not an error of the Rekognition service model")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return _SERVER_ERRORS.get(self.code, 400)


def invalid_parameter(message: str = "Request has invalid parameters.") -> RekognitionError:
    return RekognitionError("InvalidParameterException", message)


def not_found(message: str) -> RekognitionError:
    return RekognitionError("ResourceNotFoundException", message)
