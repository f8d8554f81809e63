"""botocore's Rekognition service model, the one source of truth for the API contract.

The bottom of the package: it imports nothing from facesearch, so the error codes
(:mod:`facesearch.errors`) and the contract's checks (:mod:`facesearch.contract`) both read it.
"""

from __future__ import annotations

from functools import cache

import botocore.session
from botocore.model import ServiceModel

SERVICE_NAME = "rekognition"


@cache
def service_model() -> ServiceModel:
    """botocore's Rekognition service model (the one installed with the pinned botocore)."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)
