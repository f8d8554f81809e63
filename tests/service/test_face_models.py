"""Collections keep their FaceModelVersion: faces indexed by an older release stay searchable."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from facesearch.errors import RekognitionError
from facesearch.service import RekognitionService
from facesearch.vision import CURRENT, FACE_MODELS, get_analyzer

OBAMA = ("people/barack_obama/1.jpg", "people/barack_obama/2.jpg")


@pytest.fixture
def service(tmp_path, store):
    rekognition = RekognitionService(tmp_path / "data", store=store)
    yield rekognition
    rekognition.close()


def older_collection(service: RekognitionService, collection_id: str, version: str) -> None:
    """A collection as an earlier release created it (same store, older face model)."""
    arn = f"arn:aws:rekognition:us-east-1:{DEFAULT_ACCOUNT_ID}:collection/{collection_id}"
    service.state.store.create_collection(
        DEFAULT_ACCOUNT_ID, DEFAULT_REGION, collection_id, arn, version, {}
    )


@pytest.mark.parametrize("model", [m for m in FACE_MODELS.values() if m is not CURRENT])
def test_older_model_collection_indexes_and_searches_with_its_model(service, photo, model) -> None:
    older_collection(service, "old", model.version)
    service.call("CreateCollection", {"CollectionId": "new"})
    for collection in ("old", "new"):
        indexed = service.call(
            "IndexFaces", {"CollectionId": collection, "Image": {"Bytes": photo(OBAMA[0])}}
        )
        expected = model.version if collection == "old" else CURRENT.version
        assert indexed["FaceModelVersion"] == expected
    answer = service.call(
        "SearchFacesByImage", {"CollectionId": "old", "Image": {"Bytes": photo(OBAMA[1])}}
    )
    assert answer["FaceModelVersion"] == model.version
    assert len(answer["FaceMatches"]) == 1 and answer["FaceMatches"][0]["Similarity"] >= 80

    # The stored vector is the older model's embedding, not the current one's.
    analysed = {
        m.version: get_analyzer().analyze(photo(OBAMA[0]), face_model=m).faces[0].embedding
        for m in (model, CURRENT)
    }
    assert not np.allclose(analysed[model.version], analysed[CURRENT.version], atol=1e-4)
    face_id = answer["FaceMatches"][0]["Face"]["FaceId"]
    collection = service.state.store.get_collection(DEFAULT_ACCOUNT_ID, DEFAULT_REGION, "old")
    stored = service.state.store.get_faces(collection, [face_id])[face_id].embedding
    assert np.allclose(stored, analysed[model.version], atol=1e-5)


def test_unknown_model_version_is_a_clear_error(service, photo) -> None:
    older_collection(service, "future", "facesearch-some-later-model/9")
    listed = service.call("ListFaces", {"CollectionId": "future"})
    assert listed["Faces"] == []
    with pytest.raises(RekognitionError) as excinfo:
        service.call(
            "SearchFacesByImage", {"CollectionId": "future", "Image": {"Bytes": photo(OBAMA[1])}}
        )
    assert excinfo.value.code == "InvalidParameterException"
    assert "facesearch-some-later-model/9" in excinfo.value.message
