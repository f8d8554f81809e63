"""Hypothesis strategies for fuzzing the server: request bodies generated from botocore's
service model, raw bodies no serialiser would send, and requests with odd headers, methods and
paths."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, cast

from botocore.model import ListShape, MapShape, Shape, StructureShape
from hypothesis import strategies as st

from facesearch.contract import OPERATIONS, operation_model
from support.fuzz import JSON_CONTENT_TYPE, TARGET_PREFIX, FuzzTarget

# The Java character classes of the model's patterns, spelled for Python's re (which
# hypothesis' from_regex reads): a sample of each class is enough to generate matching strings.
_JAVA_CLASSES = {r"\p{L}": "a-zA-ZÀ-ÿЀ-ӿ", r"\p{Z}": " \u00a0\u2003", r"\p{N}": "0-9٠-٩"}
# Strings that break naive code: NUL, lone surrogates (legal in JSON escapes), RTL, emoji, SQL.
_ODD_STRINGS = ("\x00", "\ud800", "a\udfffb", "\u202e", "😀" * 3, "' OR 1=1 --", "%s%n", "..", "/")
# Integers past every model range and the 64-bit edges the store may meet.
_ODD_INTEGERS = (-1, 0, 2**31, 2**63, -(2**63) - 1, 2**64, 10**30)
_ODD_FLOATS = (float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 1e308, -1e308)
_LIST_LIMIT = 5000  # sizes past any list limit of the model (4096)


def junk_json() -> st.SearchStrategy[Any]:
    """Any JSON value, of any type, with the non-standard NaN and Infinity Python writes."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=6,
    )


def request_bodies(operation: str, target: FuzzTarget, ill_typed: bool) -> st.SearchStrategy[bytes]:
    """JSON bodies for ``operation`` following its input shape: well-typed values (in and out of
    the model's lengths, ranges, patterns and enums), or with ill-typed values, nulls and unknown
    members mixed in when ``ill_typed``."""
    shape = operation_model(operation).input_shape
    document = _value(shape, shape.name, target, ill_typed) if shape else st.just({})
    return document.map(lambda value: json.dumps(value).encode())


def _value(shape: Shape, name: str, target: FuzzTarget, ill: bool) -> st.SearchStrategy[Any]:
    strategy = _typed(shape, name, target, ill)
    # One ill-typed value in four is of some other JSON type.
    return _sometimes(junk_json(), strategy, 4) if ill else strategy


def _sometimes(
    rare: st.SearchStrategy[Any], usual: st.SearchStrategy[Any], one_in: int
) -> st.SearchStrategy[Any]:
    """``rare`` once in ``one_in`` draws, else ``usual``: most values of a request stay valid,
    so that most requests get past validation to the code behind it."""
    return st.integers(1, one_in).flatmap(lambda n: rare if n == 1 else usual)


def _typed(shape: Shape, name: str, target: FuzzTarget, ill: bool) -> st.SearchStrategy[Any]:
    kind, meta = shape.type_name, shape.metadata
    # botocore builds a StructureShape, ListShape or MapShape for these type names.
    if kind == "structure":
        structure = cast(StructureShape, shape)
        members = {k: _value(member, k, target, ill) for k, member in structure.members.items()}
        required = {} if ill else {key: members[key] for key in structure.required_members}
        optional = {key: value for key, value in members.items() if key not in required}
        if ill:
            # JSON null means "absent"; Python's json writes a key once, so unknown ones are new.
            optional = {key: value | st.none() for key, value in optional.items()}
            optional["Unknown" + shape.name] = junk_json()
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "list":
        item = _value(cast(ListShape, shape).member, name, target, ill)
        low, high = meta.get("min", 0), meta.get("max", _LIST_LIMIT)
        sizes = sorted({0, max(low - 1, 0), high, high + 1})
        edge: st.SearchStrategy[Any] = st.tuples(item, st.sampled_from(sizes)).map(
            lambda pair: [pair[0]] * pair[1]
        )
        return _sometimes(edge, st.lists(item, min_size=low, max_size=min(high, low + 4)), 8)
    if kind == "map":
        # JSON object keys are strings whatever the sender meant, so keys are never junk.
        pairs = cast(MapShape, shape)
        key, value = _typed(pairs.key, name, target, ill), _value(pairs.value, name, target, ill)
        over = meta.get("max", 50) + 1
        edge = st.tuples(key, value).map(
            lambda pair: {f"{pair[0]}{i}": pair[1] for i in range(over)}
        )
        return _sometimes(edge, st.dictionaries(key, value, max_size=min(4, over - 1)), 8)
    if kind == "string":
        return _strings(shape, name, target)
    if kind in ("integer", "long"):
        low, high = meta.get("min", -(2**31)), meta.get("max", 2**31 - 1)
        edge = st.sampled_from((low - 1, high + 1, *_ODD_INTEGERS))
        return _sometimes(edge, st.integers(low, high), 8)
    if kind in ("float", "double"):
        low, high = meta.get("min", -1e6), meta.get("max", 1e6)
        edge = st.sampled_from((low - 0.001, high + 0.001, *_ODD_FLOATS))
        return _sometimes(edge, st.floats(low, high), 8)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return _blobs(target, ill)
    if kind == "timestamp":
        return st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=30)
    return junk_json()


def _strings(shape: Shape, name: str, target: FuzzTarget) -> st.SearchStrategy[str]:
    meta = shape.metadata
    low, high = meta.get("min", 0), meta.get("max", 1024)
    if "enum" in meta:
        valid = st.sampled_from(meta["enum"])
    elif "pattern" in meta:
        valid = _matching(meta["pattern"], low, high)
    else:
        valid = st.text(min_size=low, max_size=min(high, low + 40))
    if target.known.get(name):
        # Existing ids are what lead past "not found": three valid values in four.
        valid = _sometimes(valid, st.sampled_from(target.known[name]), 4)
    edge = st.one_of(
        st.text(max_size=40),
        # Lengths just past the limits, in ASCII and in 4-byte UTF-8.
        st.tuples(st.sampled_from("a😀"), st.sampled_from(sorted({max(low - 1, 0), high + 1}))).map(
            lambda pair: pair[0] * pair[1]
        ),
        st.sampled_from(_ODD_STRINGS),
    )
    return _sometimes(edge, valid, 8)


def _matching(pattern: str, min_length: int, max_length: int) -> st.SearchStrategy[str]:
    """Strings matching one of the model's (Java) patterns, within its lengths."""
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        matching = st.from_regex(pattern, fullmatch=True)
    except Exception:  # a construct Python's re lacks: plain text covers the member anyway
        return st.text(min_size=min_length, max_size=max_length)
    return matching.map(lambda text: text[:max_length]).filter(lambda t: len(t) >= min_length)


# Inverts every byte: a photo's tail turned to noise while its header stays intact.
_FLIP = bytes(255 - b for b in range(256))


def _blobs(target: FuzzTarget, ill: bool) -> st.SearchStrategy[str]:
    photos = st.sampled_from(target.images)
    edge = st.one_of(
        st.binary(max_size=64),
        st.just(b""),
        st.tuples(photos, st.integers(0, 4096)).map(lambda pair: pair[0][: pair[1]]),
        st.tuples(photos, st.integers(0, 4096)).map(
            lambda pair: pair[0][: pair[1]] + pair[0][pair[1] :].translate(_FLIP)
        ),
        st.just(target.huge_image),
    )
    encoded = _sometimes(edge, photos, 3).map(lambda data: base64.b64encode(data).decode())
    if ill:
        # Not base64 at all, or base64 without its padding.
        return encoded | st.text(max_size=20) | encoded.map(lambda text: text.rstrip("="))
    return encoded


# Bodies no client serialiser would send.
NASTY_BODIES: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \r\n\t",
    "null": b"null",
    "array": b"[]",
    "number": b"1",
    "string": b'"CollectionId"',
    "true": b"true",
    "unterminated": b'{"CollectionId": "a',
    "truncated object": b"{",
    "deep object": b'{"a":' * 2000,
    "deep object, closed": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep array, closed": b"[" * 100_000 + b"]" * 100_000,
    "deep member": b'{"CollectionId":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "integer of 4300 digits": b'{"MaxResults": ' + b"9" * 4300 + b"}",
    "integer of 5000 digits": b'{"MaxResults": ' + b"9" * 5000 + b"}",
    "number 1e400": b'{"MaxResults": 1e400, "FaceMatchThreshold": 1e400}',
    "number -1e400": b'{"MaxFaces": -1e400, "UserMatchThreshold": -1e400}',
    "NaN and Infinity": b'{"FaceMatchThreshold": NaN, "UserMatchThreshold": Infinity}',
    "invalid UTF-8": b'{"CollectionId": "\xff\xfe"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"CollectionId": "fuzz"}',
    "UTF-16": '{"CollectionId": "fuzz"}'.encode("utf-16"),
    "UTF-32": '{"CollectionId": "fuzz"}'.encode("utf-32"),
    "NUL byte": b'{"CollectionId": "fuzz"}\x00',
    "lone surrogate escape": b'{"CollectionId": "\\ud800", "UserId": "\\udfff"}',
    "NUL escape": b'{"CollectionId": "a\\u0000b", "UserId": "\\u0000"}',
    "duplicate keys": b'{"CollectionId": "fuzz", "CollectionId": 1}',
    "trailing garbage": b'{"CollectionId": "fuzz"} {}',
    "huge string": b'{"CollectionId": "' + b"a" * 2_000_000 + b'"}',
    "lone surrogate in S3Object.Name": (
        b'{"CollectionId": "fuzz", "Image": {"S3Object": {"Bucket": "000", "Name": "\\ud800"}}}'
    ),
    "many members": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(100_000)) + b"}",
}


def raw_bodies(target: FuzzTarget) -> st.SearchStrategy[bytes]:
    """Bodies that are not a well-formed request: random bytes, deep nesting at any depth, long
    numbers, and valid requests cut short or spliced with garbage (NASTY_BODIES, one test
    case each, add the named classics)."""
    valid = st.sampled_from(OPERATIONS).flatmap(lambda op: request_bodies(op, target, False))
    return st.one_of(
        st.binary(max_size=200),
        st.integers(1, 50_000).map(lambda depth: b'{"a":' * depth),
        st.integers(1, 50_000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 6000).map(lambda digits: b'{"MaxResults": -' + b"7" * digits + b"}"),
        st.tuples(valid, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]]),
        st.tuples(valid, st.integers(0, 200), st.binary(min_size=1, max_size=8)).map(
            lambda triple: triple[0][: triple[1]] + triple[2] + triple[0][triple[1] :]
        ),
    )


@dataclass(frozen=True)
class RawRequest:
    """One HTTP request, whatever its headers, and what it is meant to exercise."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    case: str


# Header values: printable Latin-1, as HTTP allows (control characters are refused by the HTTP
# parser in front of the app, which is not what is tested here).
_HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
_TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=20
)


def _without(headers: list[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name.lower()]


def _replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [*_without(headers, name), (name, value)]


@st.composite
def odd_requests(draw: st.DrawFn, target: FuzzTarget) -> RawRequest:
    """Requests whose headers, method or path are the point: targets, content types, repeated
    headers, malformed Authorization and X-Amz-Date, foreign keys, odd regions, stray headers."""
    operation = draw(st.sampled_from(OPERATIONS))
    body = draw(st.sampled_from([b"{}", b'{"CollectionId": "fuzz"}', b""]))
    good = TARGET_PREFIX + operation
    case = draw(
        st.sampled_from(
            [
                "target",
                "content-type",
                "duplicate",
                "authorization",
                "date",
                "sha256",
                "token",
                "foreign key",
                "region",
                "stray header",
                "method and path",
            ]
        )
    )
    signed = target.signed(body, good)
    if case == "target":
        # Signed with the odd target, so the request gets past the signature check.
        odd = draw(
            st.none()
            | _HEADER_TEXT
            | st.sampled_from(
                [
                    good.lower(),
                    good + ".x",
                    TARGET_PREFIX,
                    operation,
                    "Other." + operation,
                    TARGET_PREFIX + "DetectLabels",
                    TARGET_PREFIX + "__init__",
                    "." * 3,
                    "a" * 8000,
                ]
            )
        )
        headers = target.signed(body, odd)
    elif case == "content-type":
        odd = draw(
            _HEADER_TEXT
            | st.sampled_from(
                [
                    "application/json",
                    "text/plain",
                    "application/x-amz-json-1.0",
                    "multipart/form-data; boundary=x",
                    JSON_CONTENT_TYPE + "; charset=latin-1",
                ]
            )
        )
        headers = target.signed(body, good, [("Content-Type", odd)])
    elif case == "duplicate":
        name = draw(
            st.sampled_from(["X-Amz-Target", "Authorization", "X-Amz-Date", "Content-Type"])
        )
        value = next(v for k, v in signed if k.lower() == name.lower())
        other = draw(st.just(value) | _HEADER_TEXT | st.just(TARGET_PREFIX + "DeleteCollection"))
        headers = [*signed, (name, other)]
    elif case == "authorization":
        headers = draw(
            st.just(_without(signed, "Authorization"))
            | st.builds(_replace, st.just(signed), st.just("Authorization"), _authorizations())
        )
    elif case == "date":
        odd = draw(
            _HEADER_TEXT
            | st.sampled_from(
                [
                    "20240101T000000Z",
                    "99991231T235959Z",
                    "00000000T000000Z",
                    "2024-01-01T00:00:00Z",
                    "20240230T250000Z",
                ]
            )
        )
        headers = draw(
            st.sampled_from(
                [
                    _replace(signed, "X-Amz-Date", odd),
                    _without(signed, "X-Amz-Date"),
                    _replace(_without(signed, "X-Amz-Date"), "Date", odd),
                ]
            )
        )
    elif case == "sha256":
        headers = target.signed(body, good, [("X-Amz-Content-SHA256", draw(_HEADER_TEXT))])
    elif case == "token":
        headers = target.signed(body, good, [("X-Amz-Security-Token", draw(_HEADER_TEXT))])
    elif case == "foreign key":
        key_id = draw(_TOKEN | st.just(""))
        stranger = FuzzTarget(target.url, key_id or "x", "secret", {}, [])
        headers = stranger.signed(body, good)
    elif case == "region":
        region = draw(_TOKEN | st.sampled_from(["", "us-east-1 ", "eu-west-1", "aws-global"]))
        headers = target.signed(body, good, region=region)
    elif case == "stray header":
        headers = [*signed, (draw(_TOKEN), draw(_HEADER_TEXT))]
    else:
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "POST"]))
        path = draw(
            st.sampled_from(["/", "//", "/x", "/?Action=ListFaces", "/%00", "/health", "/.."])
        )
        if (method, path) == ("POST", "/"):
            path = "/?x=1"
        return RawRequest(method, path, signed, body, case)
    return RawRequest("POST", "/", headers, body, case)


def _authorizations() -> st.SearchStrategy[str]:
    """Authorization headers of the right algorithm with fields missing, empty or malformed."""
    parts = st.lists(_TOKEN | st.just("") | st.just("aws4_request"), min_size=0, max_size=7)
    credential = parts.map("/".join)
    field = st.tuples(
        st.sampled_from(["Credential", "SignedHeaders", "Signature", "Other"]),
        credential | _HEADER_TEXT,
    ).map(lambda pair: f"{pair[0]}={pair[1]}")
    fields = st.lists(field, max_size=4).map(", ".join)
    algorithm = st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1", "Bearer", ""])
    return st.tuples(algorithm, fields).map(" ".join) | _HEADER_TEXT
