"""Reading server-sent events from an httpx streaming response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: Any  # the decoded JSON of `data:`
    id: str | None


async def server_events(response: httpx.Response) -> AsyncIterator[ServerEvent]:
    """Each event of the stream, as the SSE format frames it (blank line ends an event)."""
    data: list[str]
    id_: str | None
    event, data, id_ = "message", [], None
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield ServerEvent(event, json.loads("\n".join(data)), id_)
            event, data, id_ = "message", [], None
        elif line.startswith(":"):
            continue  # a comment
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                id_ = value
