"""Server-Sent Events that stop the moment their client goes away.

:class:`EventStream` sends ``data: {json}`` events from an async iterator of lists of events (one list
per body chunk) while it listens for the client's ``http.disconnect``; whichever ends first ends the
other. The iterator is always closed (``aclose``), so its ``finally`` (closing a generation, freeing
its slot) runs at once, whether the stream finished, the client disconnected, or the server stops.
Starlette's StreamingResponse listens for the disconnect only under some ASGI versions and leaves a
suspended iterator to the garbage collector; this class does both in every case.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_events(events: list[dict]) -> bytes:
    """``data: {...}\\n\\n`` for each event (JSON, one line each, non-ASCII kept as is)."""
    return "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events).encode("utf-8")


class EventStream(Response):
    """A ``text/event-stream`` response fed by ``events``, an async iterator of lists of events."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[list[dict]], status_code: int = 200) -> None:
        self.events = events
        self.status_code = status_code
        self.background = None
        self.init_headers(HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def pump() -> None:
                    await send({"type": "http.response.start", "status": self.status_code,
                                "headers": self.raw_headers})  # fmt: skip
                    async for chunk in self.events:
                        if chunk:
                            await send({"type": "http.response.body", "body": encode_events(chunk), "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    group.cancel_scope.cancel()

                async def listen() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(pump)
                group.start_soon(listen)
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()
