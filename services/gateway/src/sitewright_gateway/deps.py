"""FastAPI dependencies every router shares: the gateway's state and the caller behind the API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from .auth import Principal, key_from_headers
from .state import GatewayState

_MISSING_KEY = (
    "an API key is required: send `Authorization: Bearer <key>` (or `X-API-Key: <key>`); "
    "`make up` prints the local key, and an admin creates others with `sitewright-admin keys create`"
)


# Every dependency is `async def`: FastAPI runs plain `def` ones in a thread pool, two thread
# hops per dependency per request, which showed up in the gateway's profile under load.
async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


State = Annotated[GatewayState, Depends(get_state)]


async def get_principal(
    state: State,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The caller, from its API key; 401 without a valid one."""
    key = key_from_headers(authorization, x_api_key)
    if not key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, _MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
    principal = await state.keys.authenticate(key)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "this API key is unknown or revoked; ask an admin for a valid one",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


async def get_tenant(principal: Caller) -> str:
    return principal.tenant


Tenant = Annotated[str, Depends(get_tenant)]


async def get_admin(principal: Caller) -> Principal:
    if not principal.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this route needs an admin API key")
    return principal


Admin = Annotated[Principal, Depends(get_admin)]
