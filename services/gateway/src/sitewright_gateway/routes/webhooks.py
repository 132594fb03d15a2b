"""Webhook endpoints of the caller's tenant: register one (and get its secret), list them, rotate a secret.

A job's webhook target needs no registration (the notifier creates the
endpoint and its secret on first use); registering first lets a receiver
know its secret before the first delivery, and re-enables an endpoint that
was disabled after answering 410.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field, field_validator

from sitewright_runtime.netguard import BlockedAddress
from sitewright_runtime.webhook_endpoints import COLLECTION, WebhookEndpoints, active_secrets

from ..state import GatewayState
from ..web.deps import State, Tenant

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


class EndpointCreate(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="Where deliveries are POSTed, http:// or https://.")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError("a webhook URL must be an http:// or https:// URL")
        return v


class EndpointView(BaseModel):
    id: str
    url: str
    disabled: bool
    disabled_reason: str | None = None
    secret: str = Field(description="The newest signing secret (whsec_...): verify deliveries with it.")
    active_secrets: int = Field(description="Secrets that currently sign; more than one during a rotation.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> EndpointView:
        secrets = active_secrets(doc)
        return cls(
            id=doc["_id"],
            url=doc["url"],
            disabled=doc["disabled"],
            disabled_reason=doc.get("disabled_reason"),
            secret=secrets[0] if secrets else doc["secrets"][0]["secret"],
            active_secrets=len(secrets),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )


def _endpoints(state: GatewayState) -> WebhookEndpoints:
    return WebhookEndpoints(state.store.db[COLLECTION])


@router.post("/endpoints", response_model=EndpointView)
async def register_endpoint(body: EndpointCreate, state: State, tenant: Tenant) -> EndpointView:
    """Register a URL (or re-enable it) and return its signing secret; the same URL returns the same endpoint."""
    try:
        state.guard.check_literal(body.url)
    except BlockedAddress as exc:
        raise HTTPException(422, f"{exc.code}: {exc.message}") from None
    return EndpointView.from_doc(await _endpoints(state).enable(tenant, body.url))


@router.get("/endpoints", response_model=list[EndpointView])
async def list_endpoints(state: State, tenant: Tenant) -> list[EndpointView]:
    return [EndpointView.from_doc(d) for d in await _endpoints(state).list(tenant)]


@router.get("/endpoints/{endpoint_id}", response_model=EndpointView)
async def get_endpoint(endpoint_id: str, state: State, tenant: Tenant) -> EndpointView:
    doc = await _endpoints(state).get(tenant, endpoint_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook endpoint with id {endpoint_id!r}")
    return EndpointView.from_doc(doc)


@router.post("/endpoints/{endpoint_id}/rotate", response_model=EndpointView)
async def rotate_secret(
    endpoint_id: str,
    state: State,
    tenant: Tenant,
    grace_s: Annotated[float, Query(ge=0, le=7 * 86400, description="How long the old secrets keep signing.")] = 86400,
) -> EndpointView:
    """Add a new secret. Deliveries carry both signatures until the old secrets expire after `grace_s`."""
    doc = await _endpoints(state).rotate(tenant, endpoint_id, grace_s)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no webhook endpoint with id {endpoint_id!r}")
    return EndpointView.from_doc(doc)
