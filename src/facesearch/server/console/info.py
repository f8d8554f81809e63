"""What the console page needs to know before anyone signs in: ``GET /console/api/info``.

The formats of the ids it asks for and the ranges of the numbers come from botocore's service
model (the contract's one source of truth), the defaults the model leaves unsaid from the service,
so the page's forms say what the API will accept. The local key is named only when it is the key
the server takes as configured (no key configured, loopback: server/main.py) and the browser is on
this machine too; a configured key is never named, whatever it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facesearch.model import service_model
from facesearch.server.auth import AccessKey, local_key
from facesearch.service.search import DEFAULT_MAX_USERS, DEFAULT_THRESHOLD
from facesearch.service.users import ASSOCIATE_THRESHOLD
from facesearch.wire.keys import is_loopback

# (operation, member) of every constraint the page checks before it sends a request.
_CONSTRAINED = {
    "CollectionId": ("CreateCollection", "CollectionId"),
    "UserId": ("CreateUser", "UserId"),
    "MaxUsers": ("SearchUsersByImage", "MaxUsers"),
    "UserMatchThreshold": ("SearchUsersByImage", "UserMatchThreshold"),
}


def console_info(
    access_key: Callable[[str], AccessKey | None], client: tuple[str, int] | None
) -> dict[str, Any]:
    """The page's facts: formats and ranges (from the model), defaults, and the local key if the
    server takes it and the browser at ``client`` (the ASGI scope's) is on loopback."""
    local = local_key()
    offered = (
        access_key(local.access_key_id) == local and client is not None and is_loopback(client[0])
    )
    return {
        "Shapes": {name: _constraints(*where) for name, where in _CONSTRAINED.items()},
        "Defaults": {
            # Rekognition documents none for MaxUsers: the service's (the model's maximum).
            "MaxUsers": DEFAULT_MAX_USERS,
            "UserMatchThreshold": DEFAULT_THRESHOLD,
            "AssociateFaces.UserMatchThreshold": ASSOCIATE_THRESHOLD,
        },
        "LocalKey": (
            {"AccessKeyId": local.access_key_id, "SecretAccessKey": local.secret_access_key}
            if offered
            else None
        ),
    }


def _constraints(operation: str, member: str) -> dict[str, Any]:
    """A member's Min, Max and Pattern as the model gives them (those it gives)."""
    shape = service_model().operation_model(operation).input_shape
    assert shape is not None, f"{operation} takes input"
    metadata = shape.members[member].metadata
    names = {"min": "Min", "max": "Max", "pattern": "Pattern"}
    return {names[key]: value for key, value in metadata.items() if key in names}
