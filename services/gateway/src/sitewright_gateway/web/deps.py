"""FastAPI dependencies every router shares: the gateway's state and the caller behind the API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from ..state import GatewayState
from .auth import Principal

_MISSING_KEY = (
    "an API key is required: send `Authorization: Bearer <key>` (or `X-API-Key: <key>`); "
    "`make up` prints the local key, and an admin creates others with `sitewright-admin keys create`"
)


# Declared as OpenAPI security schemes, so /docs has an "Authorize" button and clients see what to send.
# auto_error=False: a missing key gets our 401 below, which says how to get one.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key, as an alternative header.")


# Every dependency is `async def`: FastAPI runs plain `def` ones in a thread pool, two thread
# hops per dependency per request, which showed up in the gateway's profile under load.
async def get_state(conn: HTTPConnection) -> GatewayState:
    """The gateway's state; an HTTPConnection so WebSocket routes can depend on it too."""
    return conn.app.state.gateway


State = Annotated[GatewayState, Depends(get_state)]


async def get_principal(
    state: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The caller, from its API key; 401 without a valid one. The key itself never appears in an answer or a log."""
    key = (bearer.credentials.strip() if bearer else None) or (x_api_key.strip() if x_api_key else None)
    if not key:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, _MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
    principal = await state.keys.authenticate(key)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this API key is unknown or revoked; ask an admin for a valid one",
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
