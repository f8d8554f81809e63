"""Operation handlers register here under their Rekognition operation name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from facesearch.service.context import Context

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of operation ``name``."""

    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


def page_size(params: dict[str, Any], default: int) -> int:
    """MaxResults, with 0 or absent meaning the default page size."""
    return params.get("MaxResults") or default
