"""The Rekognition API contract, read from botocore's service model.

Everything about shapes (members, types, lengths, patterns, ranges, enums, required members) comes
from the model; this module only walks it. botocore validates little on the client side (minimums),
so the service enforces every constraint here, as Rekognition does server-side.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import regex
from botocore.model import ListShape, MapShape, OperationModel, Shape, StringShape, StructureShape

from facesearch.errors import RekognitionError
from facesearch.model import service_model
from facesearch.shapes import ShapeVisitor, join

# The face-collection operations this service implements (the rest of Rekognition is out of scope).
OPERATIONS: tuple[str, ...] = (
    "CreateCollection",
    "DeleteCollection",
    "DescribeCollection",
    "ListCollections",
    "IndexFaces",
    "ListFaces",
    "DeleteFaces",
    "SearchFaces",
    "SearchFacesByImage",
    "CreateUser",
    "DeleteUser",
    "ListUsers",
    "AssociateFaces",
    "DisassociateFaces",
    "SearchUsers",
    "SearchUsersByImage",
    "DetectFaces",
    "CompareFaces",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "StartFaceSearch",
    "GetFaceSearch",
    "StartFaceDetection",
    "GetFaceDetection",
)

# FaceDetail members the model declares that facesearch never returns: no model that installs from
# PyPI provides them (docs/vision.md), and invented values would mislead. Help pages say so.
FACE_DETAIL_NOT_RETURNED: tuple[str, ...] = (
    "Beard",
    "Mustache",
    "Eyeglasses",
    "Sunglasses",
    "FaceOccluded",
)


@cache
def operation_model(name: str) -> OperationModel:
    """The model of one supported operation; unknown names raise InvalidParameterException."""
    if name not in OPERATIONS:
        raise RekognitionError("InvalidParameterException", f"Unsupported operation: {name}")
    return service_model().operation_model(name)


def unsupported_operation(name: str | None = None) -> str:
    """The message of an UnknownOperationException, naming what facesearch implements: the
    server passes no ``name`` (its X-Amz-Target header is untrusted input, never echoed), the
    in-process client the method's operation."""
    subject = f"The operation {name}" if name else "The requested operation"
    return f"{subject} is not supported. facesearch implements: {', '.join(OPERATIONS)}."


@cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    # The model's patterns are Java regexes (\\p{L} and friends): the regex module reads them.
    return regex.compile(pattern)


def validate(operation: str, params: Mapping[str, Any]) -> None:
    """Check a request against the operation's input shape.

    Raises InvalidParameterException naming the first member that breaks a constraint: a missing
    required member, an unknown member, a wrong type, a length, range, pattern or enum violation.
    """
    shape = operation_model(operation).input_shape
    if shape is None:
        if params:
            raise RekognitionError("InvalidParameterException", "Request takes no parameters.")
        return
    _VALIDATOR.visit(shape, params, "")


def _fail(path: str, problem: str) -> RekognitionError:
    return RekognitionError("InvalidParameterException", f"Invalid parameter {path}: {problem}")


class _Validator(ShapeVisitor):
    """Raises on the first value that breaks its shape's constraints, in the request's order."""

    def visit_structure(self, shape: StructureShape, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise _fail(path or "request", "expected a structure")
        members = shape.members
        for key in value:
            if key not in members:
                raise _fail(join(path, key), "unknown parameter")
        for required in shape.required_members:
            if value.get(required) is None:
                raise _fail(join(path, required), "missing required parameter")
        return super().visit_structure(shape, value, path)

    def visit_list(self, shape: ListShape, value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            raise _fail(path, "expected a list")
        _check_size(path, len(value), shape.metadata, "items")
        return super().visit_list(shape, value, path)

    def visit_map(self, shape: MapShape, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise _fail(path, "expected a map")
        _check_size(path, len(value), shape.metadata, "entries")
        return super().visit_map(shape, value, path)

    def visit_key(self, shape: Shape, key: Any, path: str) -> Any:
        return self.visit(shape, key, f"{path} key")

    def visit_string(self, shape: StringShape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise _fail(path, "expected a string")
        meta = shape.metadata
        _check_size(path, len(value), meta, "characters")
        if "pattern" in meta and not _compiled(meta["pattern"]).fullmatch(value):
            raise _fail(path, f"must match the pattern {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            raise _fail(path, f"must be one of {', '.join(shape.enum)}")
        return value

    def visit_integer(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, "expected an integer")
        _check_range(path, value, shape.metadata)
        return value

    visit_long = visit_integer

    def visit_float(self, shape: Shape, value: Any, path: str) -> Any:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _fail(path, "expected a number")
        _check_range(path, value, shape.metadata)
        return value

    visit_double = visit_float

    def visit_boolean(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise _fail(path, "expected a boolean")
        return value

    def visit_blob(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise _fail(path, "expected bytes")
        meta = shape.metadata
        if "max" in meta and len(value) > meta["max"]:
            # Rekognition answers an oversized image with its own error, not a validation one.
            raise RekognitionError("ImageTooLargeException", "Image size is too large.")
        _check_size(path, len(value), meta, "bytes")
        return value

    def visit_timestamp(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, _dt.datetime | int | float):
            raise _fail(path, "expected a timestamp")
        return value


_VALIDATOR = _Validator()


def _check_size(path: str, size: int, meta: Mapping[str, Any], unit: str) -> None:
    if "min" in meta and size < meta["min"]:
        raise _fail(path, f"must have at least {meta['min']} {unit}")
    if "max" in meta and size > meta["max"]:
        raise _fail(path, f"must have at most {meta['max']} {unit}")


def _check_range(path: str, value: float, meta: Mapping[str, Any]) -> None:
    if "min" in meta and value < meta["min"]:
        raise _fail(path, f"must be at least {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise _fail(path, f"must be at most {meta['max']}")
