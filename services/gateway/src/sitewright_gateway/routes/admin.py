"""Admin routes (an admin API key): API keys of any tenant, and pausing a stage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from sitewright_contracts import events as ev
from sitewright_contracts.models import Stage

from ..web.deps import Admin, State

router = APIRouter(prefix="/api/admin", tags=["admin"])


class KeyCreate(BaseModel):
    tenant: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(default="", max_length=64)
    admin: bool = False


class KeyCreated(BaseModel):
    key_id: str
    tenant: str
    admin: bool
    key: str = Field(description="The API key. It is shown only in this answer; only its hash is stored.")


class KeyView(BaseModel):
    """A key as listed: its id and owner, never the key nor its hash."""

    key_id: str
    tenant: str
    name: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None = None


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(body: KeyCreate, state: State, _: Admin) -> KeyCreated:
    key, record = await state.keys.create(body.tenant, name=body.name, admin=body.admin)
    return KeyCreated(key_id=record["key_id"], tenant=record["tenant"], admin=record["admin"], key=key)


@router.get("/keys", response_model=list[KeyView])
async def list_keys(
    state: State,
    _: Admin,
    tenant: Annotated[str | None, Query(max_length=64, description="Only this tenant's keys.")] = None,
) -> list[KeyView]:
    return [KeyView(**k) for k in await state.keys.list(tenant)]


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: Annotated[str, Path(max_length=64)], state: State, _: Admin) -> None:
    if not await state.keys.revoke(key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active key with id {key_id!r}")


@router.post("/stages/{stage}/{action}", status_code=status.HTTP_202_ACCEPTED)
async def control_stage(stage: Stage, action: Literal["pause", "resume"], state: State, _: Admin) -> dict[str, str]:
    """Pause or resume a stage on every instance: paused workers finish what they started and take nothing new."""
    cls = ev.StagePaused if action == "pause" else ev.StageResumed
    event = cls(job_id=f"stage:{stage}", producer="gateway", data=ev.StageControlData(stage=stage))
    await state.publisher.publish([event], topic=state.settings.topics.control)
    return {"stage": stage, "state": "paused" if action == "pause" else "running", "event_id": event.event_id}
