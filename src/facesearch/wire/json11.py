"""AWS JSON 1.1 on the wire, read and written by walking botocore's service model.

A request body is decoded against the operation's input shape (base64 strings become ``bytes``,
epoch numbers become aware ``datetime``), and a result is encoded against the output shape (the
reverse), the way botocore's client-side serializer and parser do it. Nothing is hand-listed: a
member is a blob or a timestamp because the model says so.
"""

from __future__ import annotations

import binascii
import datetime as dt
import json
from typing import Any

import pybase64
from botocore.model import ListShape, MapShape, Shape, StructureShape

from facesearch.contract import OPERATIONS, operation_model, unsupported_operation
from facesearch.model import service_model
from facesearch.shapes import ShapeVisitor, reaches

CONTENT_TYPE = "application/x-amz-json-1.1"


class ProtocolError(Exception):
    """An error of the front end itself: not one of the Rekognition model's error shapes."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = status


def operation_from_target(target: str | None) -> str:
    """The operation named by an ``X-Amz-Target`` header, e.g. ``RekognitionService.ListFaces``."""
    prefix, _, name = (target or "").partition(".")
    if prefix != service_model().metadata["targetPrefix"] or name not in OPERATIONS:
        # The message names nothing from the request: the header is untrusted input.
        raise ProtocolError("UnknownOperationException", unsupported_operation())
    return name


def decode_request(operation: str, body: bytes) -> dict[str, Any]:
    """The parameters of a JSON 1.1 request body, in the Python forms botocore's client uses.

    Malformed JSON and values of the wrong JSON type raise SerializationException, as AWS JSON
    services do; constraints (lengths, ranges, patterns) are left to the service's validation.
    Members the model does not know pass through unchanged, so the service can name them.
    """
    try:
        document = json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _serialization(f"Request body is not valid JSON: {error}") from None
    except ValueError:
        # Python's own bound on integer digits (4,300): no Rekognition value comes near it.
        raise _serialization("Request body has a number too long to read.") from None
    except RecursionError:
        # No Rekognition request nests more than a few levels; a deep one is hostile.
        raise _serialization("Request body is nested too deeply.") from None
    shape = operation_model(operation).input_shape
    if shape is None:
        if not isinstance(document, dict):
            raise _serialization("Request body must be a JSON object.")
        return document
    params: dict[str, Any] = _DECODER.visit(shape, document, "")
    return params


def encode_response(operation: str, result: dict[str, Any]) -> bytes:
    """The JSON 1.1 body of a successful response (blobs base64, timestamps epoch seconds)."""
    shape = operation_model(operation).output_shape
    document = result if shape is None else _ENCODER.visit(shape, result)
    return _dumps(document)


def encode_error(code: str, message: str) -> bytes:
    """The body of an error response, as botocore's JSON parser reads it."""
    return _dumps({"__type": code, "Message": message})


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), default=_json_default).encode()


def _json_default(value: Any) -> Any:
    # numpy scalars reach here from the vision layer; .item() turns them into Python numbers.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _serialization(message: str) -> ProtocolError:
    return ProtocolError("SerializationException", message)


def _wrong_type(path: str, expected: str) -> ProtocolError:
    return _serialization(f"{path or 'request'}: expected {expected}")


class _Decoder(ShapeVisitor):
    """JSON values to botocore's Python forms, raising SerializationException on a wrong type."""

    def visit_structure(self, shape: StructureShape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _wrong_type(path, "a JSON object")
        return super().visit_structure(shape, value, path)

    def visit_list(self, shape: ListShape, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise _wrong_type(path, "a JSON array")
        return super().visit_list(shape, value, path)

    def visit_map(self, shape: MapShape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _wrong_type(path, "a JSON object")
        return super().visit_map(shape, value, path)

    def visit_string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise _wrong_type(path, "a string")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 text holds.
                raise _serialization(f"{path}: not a valid Unicode string") from None
        return value

    def visit_integer(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(path, "an integer")
        return value

    visit_long = visit_integer

    def visit_float(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(path, "a number")
        return float(value)

    visit_double = visit_float

    def visit_boolean(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise _wrong_type(path, "a boolean")
        return value

    def visit_blob(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise _wrong_type(path, "a base64 string")
        try:
            # pybase64 (SIMD) decodes a 5 MiB image ~30x faster than the standard library.
            return pybase64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _serialization(f"{path}: not valid base64") from None

    def visit_timestamp(self, shape: Shape, value: Any, path: str) -> Any:
        return _decode_timestamp(value, path)


def _decode_timestamp(value: Any, path: str) -> dt.datetime:
    # botocore sends epoch seconds for JSON 1.1; ISO 8601 strings are accepted as well.
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value, dt.UTC)
        if isinstance(value, str):
            parsed = dt.datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise _wrong_type(path, "a timestamp (epoch seconds)")


def _encoded(shape: Shape) -> bool:
    """Whether values of this type change on the wire (all others are sent as they are)."""
    return shape.type_name in ("blob", "timestamp")


class _Encoder(ShapeVisitor):
    """botocore's Python forms to JSON values: blobs base64, timestamps epoch seconds."""

    def visit(self, shape: Shape, value: Any, path: str = "") -> Any:
        # A value with nothing to encode inside is sent as it is (None members included).
        if value is None or not reaches(shape, _encoded):
            return value
        return super().visit(shape, value, path)

    def visit_blob(self, shape: Shape, value: Any, path: str) -> Any:
        return pybase64.b64encode(value).decode("ascii")

    def visit_timestamp(self, shape: Shape, value: Any, path: str) -> Any:
        # Epoch seconds, as botocore's JSON parser expects.
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return round(value.timestamp(), 3)
        return value


_DECODER = _Decoder()
_ENCODER = _Encoder()
