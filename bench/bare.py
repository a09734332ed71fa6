"""The yardstick: a bare ASGI app answering a billing envelope of the same size."""

from __future__ import annotations

from typing import Any

import orjson

BODY = orjson.dumps(
    {
        "code": 200,
        "error": None,
        "msg": "Information found for the current month",
        "data": [
            {
                "operation": "Demo Contact Center",
                "description": "IVR calls",
                "items": "35861",
                "date": "2026-11-24",
            }
        ],
    }
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
