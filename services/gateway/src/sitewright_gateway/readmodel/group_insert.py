"""Group commit for inserts: many requests' documents, one database command.

Each `insert` joins the next batch. A batch starts as soon as the one before it
returns, with every document queued meanwhile, so a lone request waits for
nothing, and under load the database gets one `insert_many` for many requests
instead of one command each. On the embedded database an `insert_one` of a job
costs about 2.5 ms, and in batches of ten about 1 ms a document.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from .store import DUPLICATE_KEY


class GroupInsert:
    def __init__(self, collection: Callable[[], AsyncCollection], max_batch: int = 200):
        self._collection = collection  # called per batch: the read model may switch databases (a rebuild)
        self._max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def insert(self, doc: dict[str, Any]) -> None:
        """Insert `doc`, as `insert_one` would: `DuplicateKeyError` if its `_id` is taken, or what failed its batch."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((doc, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        # The insert goes ahead even if the request is cancelled meanwhile (its client went away).
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            errors: dict[int, dict[str, Any]] = {}
            try:
                await self._collection().insert_many([doc for doc, _ in batch], ordered=False)
            except BulkWriteError as exc:
                errors = {err["index"]: err for err in exc.details.get("writeErrors", [])}
            except Exception as exc:  # the database is unreachable: every request of the batch is told
                for _, done in batch:
                    done.set_exception(exc)
                continue
            for index, (_, done) in enumerate(batch):
                err = errors.get(index)
                if err is None:
                    done.set_result(None)
                else:
                    kind = DuplicateKeyError if err.get("code") == DUPLICATE_KEY else WriteError
                    done.set_exception(kind(err.get("errmsg", ""), err.get("code"), err))
