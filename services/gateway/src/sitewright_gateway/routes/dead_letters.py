"""Dead-letter routes: list the entries a caller may see, and replay one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from .. import dead_letters
from ..web.deps import Caller, State

router = APIRouter(prefix="/api", tags=["dead letters"])


class DeadLetter(BaseModel):
    id: str
    job_id: str | None
    tenant: str | None
    event_type: str | None
    event_id: str | None
    reason: str | None
    error: str | None
    attempts: int
    groups: list[str | None]
    source: dict[str, Any]
    created_at: datetime
    replays: list[dict[str, Any]]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> DeadLetter:
        return cls(id=doc["_id"], **{k: doc.get(k) for k in cls.model_fields if k != "id"})


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


@router.get("/dlq", response_model=DeadLetterPage)
async def list_dead_letters(
    state: State,
    caller: Caller,
    job_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
) -> DeadLetterPage:
    """Dead-lettered messages of the caller's jobs (an admin key sees all), newest first."""
    docs, next_cursor = await dead_letters.page(state, caller, job_id, limit, cursor)
    return DeadLetterPage(items=[DeadLetter.from_doc(d) for d in docs], next_cursor=next_cursor)


@router.post(
    "/dlq/{entry_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: {"description": "No such entry."},
        409: {"description": "The job cannot be restarted."},
        422: {"description": "The message cannot be replayed."},
    },
)
async def replay_dead_letter(entry_id: str, state: State, caller: Caller) -> dict[str, Any]:
    """Start the entry's job again: a new attempt of the failed stage, or the original message once more."""
    return await dead_letters.replay(state, caller, entry_id)
