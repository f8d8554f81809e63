"""The web console at ``/console`` (being built)."""

from __future__ import annotations

from typing import Any


class Console:
    """Serves ``/console``; placeholder until the console lands."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
