"""The JSON 1.1 protocol, end to end through boto3 and with raw requests (fake service)."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from facesearch.contract import OPERATIONS, operation_model
from facesearch.server.app import App
from facesearch.server.auth import Verifier
from facesearch.wire.json11 import ProtocolError, decode_request, encode_response

from .conftest import ALICE, BOB, CREATED, error_type, rekognition, serve, signed_post


def botocore_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """The error as botocore's own JSON parser reads the raw response."""
    response = {"status_code": status, "headers": headers, "body": body}
    output = operation_model("ListCollections").output_shape
    return create_parser("json").parse(response, output)["Error"]


def test_round_trip_decodes_timestamps_and_carries_request_id(endpoint):
    client = rekognition(endpoint)
    created = client.create_collection(CollectionId="c1")
    assert created["FaceModelVersion"] == "7.0"
    described = client.describe_collection(CollectionId="c1")
    assert described["CreationTimestamp"] == CREATED
    assert described["ResponseMetadata"]["RequestId"]
    assert described["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/x-amz-json-1.1"
    )


def test_blobs_arrive_as_bytes(endpoint, fake_service):
    image = bytes(range(256)) * 10
    rekognition(endpoint).detect_faces(Image={"Bytes": image})
    operation, params, _ = fake_service.calls[-1]
    assert operation == "DetectFaces" and params["Image"]["Bytes"] == image


def test_compare_faces_with_two_max_size_images_fits_the_body_limit(endpoint, fake_service):
    image = b"\xff" * 5 * 1024 * 1024
    rekognition(endpoint).compare_faces(SourceImage={"Bytes": image}, TargetImage={"Bytes": image})
    assert fake_service.calls[-1][1]["TargetImage"]["Bytes"] == image


def test_model_errors_reach_boto3_as_modeled_exceptions(endpoint):
    client = rekognition(endpoint)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as raised:
        client.describe_collection(CollectionId="missing")
    response = raised.value.response
    assert response["Error"]["Message"] == "Collection not found."
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["RequestId"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "ResourceNotFoundException"
    )


def test_unknown_operation_names_what_is_implemented_never_the_target(endpoint):
    client = rekognition(endpoint)
    with pytest.raises(ClientError) as raised:
        client.detect_labels(Image={"Bytes": b"not read"})
    error = raised.value.response["Error"]
    assert error["Code"] == "UnknownOperationException"
    message = error["Message"]
    assert message.startswith("The requested operation is not supported. facesearch implements: ")
    assert all(name in message for name in OPERATIONS)
    assert "DetectLabels" not in message
    # A hostile header is not echoed either.
    status, headers, payload = signed_post(endpoint, b"{}", "RekognitionService.<b>Hello</b>")
    assert status == 400 and error_type(payload) == "UnknownOperationException"
    assert "<b>" not in payload.decode() and "Hello" not in payload.decode()
    assert botocore_error(status, headers, payload)["Message"] == message


def test_constraint_violation_is_invalid_parameter(endpoint):
    client = rekognition(endpoint)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.create_collection(CollectionId="not/valid")


def test_unexpected_exception_is_a_generic_500_logged_server_side(endpoint, caplog):
    client = rekognition(endpoint)
    with (
        caplog.at_level(logging.ERROR, logger="facesearch.server"),
        pytest.raises(client.exceptions.InternalServerError) as raised,
    ):
        client.create_collection(CollectionId="explode")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "secret internal detail" not in str(raised.value)
    assert "secret internal detail" in caplog.text


def test_accounts_do_not_see_each_other(endpoint):
    rekognition(endpoint, ALICE).create_collection(CollectionId="alice-only")
    bob = rekognition(endpoint, BOB)
    assert bob.list_collections()["CollectionIds"] == []
    with pytest.raises(bob.exceptions.ResourceNotFoundException):
        bob.describe_collection(CollectionId="alice-only")
    assert rekognition(endpoint, ALICE).list_collections()["CollectionIds"] == ["alice-only"]


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("RekognitionService.DetectLabels", b"{}", "UnknownOperationException"),
        ("SomethingElse.ListCollections", b"{}", "UnknownOperationException"),
        ("", b"{}", "UnknownOperationException"),
        ("RekognitionService.ListCollections", b'{"MaxResults": ', "SerializationException"),
        ("RekognitionService.ListCollections", b"\xff\xfe", "SerializationException"),
        ("RekognitionService.ListCollections", b"[1, 2]", "SerializationException"),
        ("RekognitionService.ListCollections", b'{"MaxResults": "ten"}', "SerializationException"),
        ("RekognitionService.DetectFaces", b'{"Image": {"Bytes": "%%"}}', "SerializationException"),
        ("RekognitionService.ListCollections", b'{"Bogus": 1}', "InvalidParameterException"),
    ],
)
def test_bad_requests_are_clean_4xx_that_botocore_parses(endpoint, target, body, code):
    status, headers, payload = signed_post(endpoint, body, target)
    assert status == 400
    assert error_type(payload) == code
    assert headers["x-amzn-errortype"] == code
    assert headers["x-amzn-requestid"]
    assert botocore_error(status, headers, payload)["Code"] == code


def test_oversized_body_is_413(fake_service):
    app = App(fake_service, Verifier({ALICE.access_key_id: ALICE}), max_body_bytes=1024 * 1024)
    with serve(app) as url:
        client = rekognition(url)
        with pytest.raises(ClientError) as raised:
            client.detect_faces(Image={"Bytes": b"x" * 1024 * 1024})
        error = raised.value.response
        assert error["Error"]["Code"] == "RequestEntityTooLargeException"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
        # The connection stays usable: the oversized body was read and dropped.
        assert client.list_collections()["CollectionIds"] == []
    assert not any(call[0] == "DetectFaces" for call in fake_service.calls)


def test_empty_body_means_no_parameters(endpoint):
    status, _, payload = signed_post(endpoint, b"")
    assert status == 200 and json.loads(payload) == {"CollectionIds": [], "FaceModelVersions": []}


def test_only_post_slash_serves_operations(endpoint):
    status, headers, payload = signed_post(endpoint + "/other", b"{}")
    assert status == 404 and error_type(payload) == "UnknownOperationException"
    assert headers["x-amzn-requestid"]


def test_health_is_unauthenticated_and_reports_readiness(endpoint, fake_service):
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(endpoint + "/health", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read())["models"] == "ready"
    fake_service.health_report["models"] = "loading failed: no file"
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(endpoint + "/health", timeout=10)
    assert raised.value.code == 503
    assert json.loads(raised.value.read())["status"] == "not ready"


def test_shutdown_closes_the_service(fake_service):
    with serve(App(fake_service, Verifier({}))):
        assert not fake_service.closed
    assert fake_service.closed


def test_decode_and_encode_follow_the_model():
    body = json.dumps(
        {
            "CollectionId": "c",
            "Image": {"Bytes": base64.b64encode(b"\x00\x01").decode()},
            "FaceMatchThreshold": 90,
            "MaxFaces": 3,
        }
    ).encode()
    params = decode_request("SearchFacesByImage", body)
    assert params["Image"]["Bytes"] == b"\x00\x01"
    assert params["FaceMatchThreshold"] == 90.0 and isinstance(params["FaceMatchThreshold"], float)
    encoded = json.loads(encode_response("DescribeCollection", {"CreationTimestamp": CREATED}))
    assert encoded == {"CreationTimestamp": CREATED.timestamp()}
    with pytest.raises(ProtocolError):
        decode_request("SearchFacesByImage", b'{"MaxFaces": true}')
