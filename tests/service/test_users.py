"""Users: create, delete, list, associate, disassociate, idempotency."""

from __future__ import annotations

import pytest


@pytest.fixture
def enrolled(client, photo):
    """A collection with two Obama faces, one Biden face and one Bill Gates face indexed."""
    client.create_collection(CollectionId="staff")

    def index(path: str) -> str:
        answer = client.index_faces(CollectionId="staff", Image={"Bytes": photo(path)})
        return answer["FaceRecords"][0]["Face"]["FaceId"]

    faces = {
        "obama1": index("people/barack_obama/1.jpg"),
        "obama2": index("people/barack_obama/2.jpg"),
        "biden": index("people/joe_biden/1.jpg"),
        "gates": index("people/bill_gates/1.jpg"),
    }
    return client, faces


def test_user_lifecycle(enrolled) -> None:
    client, faces = enrolled
    client.create_user(CollectionId="staff", UserId="obama")
    assert client.list_users(CollectionId="staff")["Users"] == [
        {"UserId": "obama", "UserStatus": "CREATED"}
    ]
    answer = client.associate_faces(
        CollectionId="staff", UserId="obama", FaceIds=[faces["obama1"], faces["obama2"]]
    )
    assert {f["FaceId"] for f in answer["AssociatedFaces"]} == {faces["obama1"], faces["obama2"]}
    assert answer["UnsuccessfulFaceAssociations"] == [] and answer["UserStatus"] == "ACTIVE"
    assert client.describe_collection(CollectionId="staff")["UserCount"] == 1
    # Associating again is silently ignored.
    again = client.associate_faces(CollectionId="staff", UserId="obama", FaceIds=[faces["obama1"]])
    assert again["AssociatedFaces"] == [] and again["UnsuccessfulFaceAssociations"] == []
    gone = client.disassociate_faces(
        CollectionId="staff", UserId="obama", FaceIds=[faces["obama1"]]
    )
    assert gone["DisassociatedFaces"] == [{"FaceId": faces["obama1"]}]
    assert gone["UserStatus"] == "ACTIVE"
    client.delete_user(CollectionId="staff", UserId="obama")
    assert client.list_users(CollectionId="staff")["Users"] == []
    # Deleting a user frees its faces: they can be deleted now.
    deleted = client.delete_faces(CollectionId="staff", FaceIds=[faces["obama2"]])
    assert deleted["DeletedFaces"] == [faces["obama2"]]


def test_associate_rules(enrolled) -> None:
    client, faces = enrolled
    client.create_user(CollectionId="staff", UserId="obama")
    client.create_user(CollectionId="staff", UserId="gates")
    client.associate_faces(CollectionId="staff", UserId="obama", FaceIds=[faces["obama1"]])
    client.associate_faces(CollectionId="staff", UserId="gates", FaceIds=[faces["gates"]])
    missing = "00000000-0000-0000-0000-000000000000"
    answer = client.associate_faces(
        CollectionId="staff",
        UserId="obama",
        FaceIds=[faces["obama2"], faces["biden"], faces["gates"], missing],
    )
    assert answer["AssociatedFaces"] == [{"FaceId": faces["obama2"]}]
    failures = {f["FaceId"]: f for f in answer["UnsuccessfulFaceAssociations"]}
    assert failures[missing]["Reasons"] == ["FACE_NOT_FOUND"]
    assert failures[faces["gates"]]["Reasons"] == ["ASSOCIATED_TO_A_DIFFERENT_USER"]
    assert failures[faces["gates"]]["UserId"] == "gates"
    # Biden is not Obama: below the default bar of 75 once the user has a face.
    assert failures[faces["biden"]]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]
    assert failures[faces["biden"]]["Confidence"] < 75
    # With the bar at 0 the same face is accepted.
    loose = client.associate_faces(
        CollectionId="staff", UserId="obama", FaceIds=[faces["biden"]], UserMatchThreshold=0
    )
    assert loose["AssociatedFaces"] == [{"FaceId": faces["biden"]}]
    wrong_user = client.disassociate_faces(
        CollectionId="staff", UserId="obama", FaceIds=[faces["gates"], missing]
    )
    assert {f["FaceId"]: f["Reasons"] for f in wrong_user["UnsuccessfulFaceDisassociations"]} == {
        faces["gates"]: ["ASSOCIATED_TO_A_DIFFERENT_USER"],
        missing: ["FACE_NOT_FOUND"],
    }


def test_user_errors(enrolled) -> None:
    client, faces = enrolled
    client.create_user(CollectionId="staff", UserId="obama")
    with pytest.raises(client.exceptions.ConflictException):
        client.create_user(CollectionId="staff", UserId="obama")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_user(CollectionId="staff", UserId="nobody")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.associate_faces(CollectionId="staff", UserId="nobody", FaceIds=[faces["gates"]])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.create_user(CollectionId="nocollection", UserId="x")
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.create_user(CollectionId="staff", UserId="has space")
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.associate_faces(
            CollectionId="staff", UserId="obama", FaceIds=[faces["gates"]], UserMatchThreshold=101
        )
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.associate_faces(CollectionId="staff", UserId="obama", FaceIds=[faces["gates"]] * 101)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.list_users(CollectionId="staff", MaxResults=501)


def test_idempotency(enrolled) -> None:
    client, faces = enrolled
    client.create_user(CollectionId="staff", UserId="u", ClientRequestToken="token-1")
    # The same token and arguments: the same (successful) answer, not a ConflictException.
    client.create_user(CollectionId="staff", UserId="u", ClientRequestToken="token-1")
    with pytest.raises(client.exceptions.IdempotentParameterMismatchException):
        client.create_user(CollectionId="staff", UserId="v", ClientRequestToken="token-1")
    first = client.associate_faces(
        CollectionId="staff", UserId="u", FaceIds=[faces["gates"]], ClientRequestToken="assoc"
    )
    repeat = client.associate_faces(
        CollectionId="staff", UserId="u", FaceIds=[faces["gates"]], ClientRequestToken="assoc"
    )
    assert repeat["AssociatedFaces"] == first["AssociatedFaces"] == [{"FaceId": faces["gates"]}]
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.create_user(CollectionId="staff", UserId="w", ClientRequestToken="bad token!")


def test_faces_per_user_limit(client, photo) -> None:
    client.create_collection(CollectionId="many")
    client.create_user(CollectionId="many", UserId="u")
    data = photo("people/bill_gates/1.jpg")
    face_ids = [
        client.index_faces(CollectionId="many", Image={"Bytes": data}, ExternalImageId=f"e{i}")[
            "FaceRecords"
        ][0]["Face"]["FaceId"]
        for i in range(101)
    ]
    client.associate_faces(CollectionId="many", UserId="u", FaceIds=face_ids[:100])
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        client.associate_faces(CollectionId="many", UserId="u", FaceIds=face_ids[100:])
