"""Search operations, SearchUsersByImage to the letter of the contract."""

from __future__ import annotations

import pytest

GROUP = "group/face_recognition_obama_and_biden.jpg"


# Every test here runs on each store with its in-process index, and on PostgreSQL searching
# inside the database (index/database.py).
@pytest.fixture(params=["sqlite", "postgresql", "postgresql-database"])
def backend(request: pytest.FixtureRequest) -> tuple[str | None, str]:
    """(store URL or None for the embedded store, search mode)."""
    if request.param == "sqlite":
        return None, "index"
    url = request.getfixturevalue("postgres").new_database()
    return url, "database" if request.param.endswith("-database") else "index"


@pytest.fixture
def store(backend: tuple[str | None, str]) -> str | None:
    return backend[0]


@pytest.fixture
def search_mode(backend: tuple[str | None, str]) -> str:
    return backend[1]


@pytest.fixture
def users(client, photo):
    """A collection with users obama (2 faces), biden (2 faces) and gates (1 face)."""
    client.create_collection(CollectionId="staff")
    enrolment = {
        "obama": ["people/barack_obama/1.jpg", "people/barack_obama/2.jpg"],
        "biden": ["people/joe_biden/1.jpg", "people/joe_biden/2.jpg"],
        "gates": ["people/bill_gates/1.jpg"],
    }
    faces: dict[str, list[str]] = {}
    for user, paths in enrolment.items():
        client.create_user(CollectionId="staff", UserId=user)
        faces[user] = [
            client.index_faces(CollectionId="staff", Image={"Bytes": photo(p)})["FaceRecords"][0][
                "Face"
            ]["FaceId"]
            for p in paths
        ]
        client.associate_faces(CollectionId="staff", UserId=user, FaceIds=faces[user])
    return client, faces


def test_search_users_by_image_contract(users, photo) -> None:
    client, _ = users
    answer = client.search_users_by_image(
        CollectionId="staff", Image={"Bytes": photo("people/barack_obama/3.jpg")}
    )
    matches = answer["UserMatches"]
    assert matches and matches[0]["User"] == {"UserId": "obama", "UserStatus": "ACTIVE"}
    similarities = [m["Similarity"] for m in matches]
    assert similarities == sorted(similarities, reverse=True)
    assert all(s >= 80 for s in similarities)
    assert answer["FaceModelVersion"]
    detail = answer["SearchedFace"]["FaceDetail"]
    assert {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"} <= set(detail)
    assert answer["UnsearchedFaces"] == []


def test_search_users_by_image_group_photo(users, photo) -> None:
    client, _ = users
    answer = client.search_users_by_image(CollectionId="staff", Image={"Bytes": photo(GROUP)})
    searched = answer["SearchedFace"]["FaceDetail"]["BoundingBox"]
    unsearched = answer["UnsearchedFaces"]
    assert len(unsearched) >= 1
    for face in unsearched:
        assert face["Reasons"][0] == "FACE_NOT_LARGEST"
        box = face["FaceDetails"]["BoundingBox"]
        assert box["Width"] * box["Height"] <= searched["Width"] * searched["Height"]
    assert answer["UserMatches"][0]["User"]["UserId"] in {"obama", "biden"}


def test_search_users_by_image_thresholds_and_limits(users, photo) -> None:
    client, _ = users
    probe = {"Bytes": photo("people/barack_obama/3.jpg")}
    everyone = client.search_users_by_image(
        CollectionId="staff", Image=probe, UserMatchThreshold=0
    )["UserMatches"]
    assert {m["User"]["UserId"] for m in everyone} == {"obama", "biden", "gates"}
    top = client.search_users_by_image(
        CollectionId="staff", Image=probe, UserMatchThreshold=0, MaxUsers=1
    )["UserMatches"]
    assert top == everyone[:1]
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.search_users_by_image(CollectionId="staff", Image=probe, MaxUsers=501)
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.search_users_by_image(CollectionId="staff", Image=probe, UserMatchThreshold=100.5)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.search_users_by_image(CollectionId="nobody", Image=probe)


def test_search_users_by_image_without_face(users, photo) -> None:
    client, _ = users
    answer = client.search_users_by_image(
        CollectionId="staff", Image={"Bytes": photo("noface/scikit_image_rocket.jpg")}
    )
    assert answer["UserMatches"] == [] and "SearchedFace" not in answer
    assert answer["UnsearchedFaces"] == []


def test_search_users_by_image_quality_filter(users, photo) -> None:
    client, _ = users
    # The third face of this photo (lower right) is dark: HIGH names that beside FACE_NOT_LARGEST.
    group = client.search_users_by_image(
        CollectionId="staff", Image={"Bytes": photo(GROUP)}, QualityFilter="HIGH"
    )
    assert "SearchedFace" in group
    reasons = [face["Reasons"] for face in group["UnsearchedFaces"]]
    assert all(r[0] == "FACE_NOT_LARGEST" for r in reasons)
    assert ["FACE_NOT_LARGEST", "LOW_BRIGHTNESS"] in reasons
    # In this selfie the largest face is a weak detection: under HIGH nothing is searched and
    # that face comes first among the unsearched, with its own reasons only.
    selfie = {"Bytes": photo("group/deepface_selfie_many_people.jpg")}
    strict = client.search_users_by_image(CollectionId="staff", Image=selfie, QualityFilter="HIGH")
    assert "SearchedFace" not in strict and strict["UserMatches"] == []
    first, *rest = strict["UnsearchedFaces"]
    assert first["Reasons"] and "FACE_NOT_LARGEST" not in first["Reasons"]
    assert all(face["Reasons"][0] == "FACE_NOT_LARGEST" for face in rest)
    loose = client.search_users_by_image(CollectionId="staff", Image=selfie)
    assert "SearchedFace" in loose
    assert loose["SearchedFace"]["FaceDetail"]["BoundingBox"] == first["FaceDetails"]["BoundingBox"]
    assert len(loose["UnsearchedFaces"]) == len(rest)


def test_search_users(users) -> None:
    client, faces = users
    by_face = client.search_users(CollectionId="staff", FaceId=faces["obama"][0])
    assert by_face["SearchedFace"] == {"FaceId": faces["obama"][0]}
    assert by_face["UserMatches"][0]["User"]["UserId"] == "obama"
    by_user = client.search_users(CollectionId="staff", UserId="obama", UserMatchThreshold=0)
    assert by_user["SearchedUser"] == {"UserId": "obama"}
    assert "obama" not in [m["User"]["UserId"] for m in by_user["UserMatches"]]
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.search_users(CollectionId="staff", FaceId=faces["obama"][0], UserId="obama")
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.search_users(CollectionId="staff")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.search_users(CollectionId="staff", UserId="nobody")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.search_users(CollectionId="staff", FaceId="00000000-0000-0000-0000-000000000000")


def test_search_faces(users, photo) -> None:
    client, faces = users
    answer = client.search_faces(CollectionId="staff", FaceId=faces["obama"][0])
    assert answer["SearchedFaceId"] == faces["obama"][0]
    matched = [m["Face"]["FaceId"] for m in answer["FaceMatches"]]
    assert faces["obama"][0] not in matched and faces["obama"][1] in matched
    assert not set(matched) & set(faces["biden"] + faces["gates"])
    assert all(m["Face"]["UserId"] == "obama" for m in answer["FaceMatches"])
    capped = client.search_faces(
        CollectionId="staff", FaceId=faces["obama"][0], FaceMatchThreshold=0, MaxFaces=2
    )
    assert len(capped["FaceMatches"]) == 2
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.search_faces(CollectionId="staff", FaceId=faces["obama"][0], MaxFaces=4097)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.search_faces(CollectionId="staff", FaceId="00000000-0000-0000-0000-000000000000")


def test_search_faces_by_image(users, photo) -> None:
    client, _ = users
    answer = client.search_faces_by_image(
        CollectionId="staff", Image={"Bytes": photo("people/joe_biden/3.jpg")}
    )
    assert answer["FaceMatches"][0]["Face"]["UserId"] == "biden"
    assert 99 < answer["SearchedFaceConfidence"] < 100  # a clear frontal face: 99.7
    assert set(answer["SearchedFaceBoundingBox"]) == {"Width", "Height", "Left", "Top"}
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.search_faces_by_image(
            CollectionId="staff", Image={"Bytes": photo("noface/scikit_image_brick.png")}
        )
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.search_faces_by_image(
            CollectionId="staff", Image={"Bytes": photo("invalid/truncated_jpeg.jpg")}
        )


def test_detect_faces(client, photo) -> None:
    default = client.detect_faces(Image={"Bytes": photo(GROUP)})["FaceDetails"]
    assert len(default) >= 2
    assert set(default[0]) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    everything = client.detect_faces(Image={"Bytes": photo(GROUP)}, Attributes=["ALL"])
    assert "Emotions" in everything["FaceDetails"][0]
    some = client.detect_faces(Image={"Bytes": photo(GROUP)}, Attributes=["EMOTIONS"])
    assert set(some["FaceDetails"][0]) == {
        "BoundingBox",
        "Confidence",
        "Landmarks",
        "Pose",
        "Quality",
        "Emotions",
    }
    assert (
        client.detect_faces(Image={"Bytes": photo("noface/scikit_image_chelsea.png")})[
            "FaceDetails"
        ]
        == []
    )
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.detect_faces(Image={"Bytes": photo("invalid/csv_text.jpg")})


def test_compare_faces(client, photo) -> None:
    answer = client.compare_faces(
        SourceImage={"Bytes": photo("people/barack_obama/1.jpg")},
        TargetImage={"Bytes": photo(GROUP)},
    )
    assert len(answer["FaceMatches"]) == 1
    assert answer["FaceMatches"][0]["Similarity"] >= 80
    assert len(answer["UnmatchedFaces"]) >= 1
    assert set(answer["SourceImageFace"]) == {"BoundingBox", "Confidence"}
    match = answer["FaceMatches"][0]["Face"]
    assert {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"} <= set(match)
    nobody = client.compare_faces(
        SourceImage={"Bytes": photo("people/bill_gates/1.jpg")},
        TargetImage={"Bytes": photo(GROUP)},
    )
    assert nobody["FaceMatches"] == []
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.compare_faces(
            SourceImage={"Bytes": photo("noface/scikit_image_coffee.png")},
            TargetImage={"Bytes": photo(GROUP)},
        )
