"""The event loop every service runs on.

uvloop: its sockets, timers and callbacks are implemented in C, which measured
faster than asyncio's default loop for the work every service does most (many
small messages on sockets to the broker, the database and HTTP clients).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

# uvicorn takes the loop by name.
UVICORN_LOOP = "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop."""
    return uvloop.run(main)
