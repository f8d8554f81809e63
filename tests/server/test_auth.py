"""SigV4 authentication: each failure as boto3 sees it, key loading, accounts."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from facesearch.defaults import DEFAULT_ACCOUNT_ID
from facesearch.server.auth import AccessKey, load_keys

from .conftest import ALICE, error_type, rekognition, signed_post


def error_of(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def signed_at(offset: dt.timedelta):
    """Patch botocore's signing clock (only), so requests carry a skewed X-Amz-Date."""
    return mock.patch(
        "botocore.auth.get_current_datetime",
        return_value=dt.datetime.now(dt.UTC).replace(tzinfo=None) + offset,
    )


def test_valid_signature_from_any_region(endpoint):
    assert rekognition(endpoint, region="ap-southeast-2").list_collections()["CollectionIds"] == []


def test_unsigned_request(endpoint):
    client = rekognition(endpoint, signature_version=UNSIGNED)
    code, message, status = error_of(client.list_collections)
    assert (code, message, status) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
        400,
    )


def test_unknown_access_key(endpoint):
    client = rekognition(endpoint, AccessKey("AKIDNOBODY", "whatever"))
    code, message, _ = error_of(client.list_collections)
    assert code == "UnrecognizedClientException"
    assert message == "The security token included in the request is invalid."


def test_wrong_secret(endpoint):
    client = rekognition(endpoint, AccessKey(ALICE.access_key_id, "not-the-secret"))
    code, message, _ = error_of(client.list_collections)
    assert code == "InvalidSignatureException"
    assert message.startswith("The request signature we calculated does not match")
    assert "alice-secret" not in message


def test_expired_signature(endpoint):
    client = rekognition(endpoint)
    with signed_at(-dt.timedelta(minutes=16)):
        code, message, status = error_of(client.list_collections)
    assert (code, status) == ("InvalidSignatureException", 400)
    assert message.startswith("Signature expired: ") and message.endswith(" - 15 min.)")


def test_signature_from_the_future(endpoint):
    client = rekognition(endpoint)
    with signed_at(dt.timedelta(minutes=16)):
        code, message, _ = error_of(client.list_collections)
    assert code == "InvalidSignatureException" and message.startswith("Signature not yet current")


def test_skew_within_fifteen_minutes_is_accepted(endpoint):
    with signed_at(-dt.timedelta(minutes=14)):
        assert rekognition(endpoint).list_collections()["CollectionIds"] == []


def test_tampered_body_and_headers(endpoint):
    def swap_body(request):
        request.data = b'{"MaxResults": 1}'

    def swap_target(request):
        request.headers.replace_header("X-Amz-Target", "RekognitionService.DescribeCollection")

    for tamper in (swap_body, swap_target):
        status, _, payload = signed_post(endpoint, b"{}", tamper=tamper)
        assert (status, error_type(payload)) == (400, "InvalidSignatureException")


def test_session_token_is_not_accepted(endpoint):
    client = rekognition(endpoint)
    client.meta.events.register(
        "before-sign.*.*",
        lambda request, **_: request.headers.add_header("X-Amz-Security-Token", "t"),
    )
    assert error_of(client.list_collections)[0] == "UnrecognizedClientException"


def test_malformed_authorization_header(endpoint):
    def garble(request):
        request.headers.replace_header("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDALICE")

    status, _, payload = signed_post(endpoint, b"{}", tamper=garble)
    assert (status, error_type(payload)) == (400, "IncompleteSignatureException")


def test_load_keys_from_environment_and_file(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[alice]\naws_access_key_id = AKIDALICE\naws_secret_access_key = s1\n"
        "account_id = 111111111111\n\n"
        "[carol]\naws_access_key_id = AKIDCAROL\naws_secret_access_key = s3\n"
    )
    env = {"FACESEARCH_ACCESS_KEY_ID": "AKIDENV", "FACESEARCH_SECRET_ACCESS_KEY": "s0"}
    keys = load_keys(credentials, env)
    assert keys["AKIDENV"] == AccessKey("AKIDENV", "s0", DEFAULT_ACCOUNT_ID)
    assert keys["AKIDALICE"].account_id == "111111111111"
    assert keys["AKIDCAROL"].account_id == DEFAULT_ACCOUNT_ID
    assert "s1" not in repr(keys)
    assert load_keys(None, {"FACESEARCH_CREDENTIALS_FILE": str(credentials)}).keys() == {
        "AKIDALICE",
        "AKIDCAROL",
    }


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("[a]\naws_access_key_id = K\n", {}),
        ("[a]\naws_access_key_id = K\naws_secret_access_key = s\naccount_id = 12\n", {}),
        (
            "[a]\naws_access_key_id = K\naws_secret_access_key = s\n",
            {"FACESEARCH_ACCESS_KEY_ID": "K", "FACESEARCH_SECRET_ACCESS_KEY": "x"},
        ),
        ("", {"FACESEARCH_ACCESS_KEY_ID": "K"}),
        ("not ini", {}),
    ],
)
def test_bad_key_configuration_is_refused(tmp_path, text, env):
    path = tmp_path / "credentials"
    path.write_text(text)
    with pytest.raises(ValueError):
        load_keys(path, env)
