"""Operation handlers register here under their Rekognition operation name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from facesearch.service.context import Context

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}
T = TypeVar("T")


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of operation ``name``."""

    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


def paginate(
    ctx: Context,
    params: dict[str, Any],
    *,
    scope: str,
    default_size: int,
    start: Any,
    fetch: Callable[[Any, int], Sequence[T]],
    position: Callable[[T], Any],
) -> tuple[Sequence[T], str | None]:
    """One page of a list operation, and the NextToken of the next page (None on the last).

    ``fetch(after, limit)`` reads up to ``limit`` items after a position (``start`` on the first
    page), ``position(item)`` is where an item sits. The token is bound to the caller, the
    operation and ``scope``. MaxResults 0 or absent means ``default_size``.
    """
    scope = f"{ctx.account_id}|{ctx.operation}|{scope}"
    after = ctx.state.tokens.decode(scope, params["NextToken"]) if "NextToken" in params else start
    limit = params.get("MaxResults") or default_size
    items = fetch(after, limit + 1)  # one more tells whether a next page exists
    page = items[:limit]
    token = ctx.state.tokens.encode(scope, position(page[-1])) if len(items) > limit else None
    return page, token
