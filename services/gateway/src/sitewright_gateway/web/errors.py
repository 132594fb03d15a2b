"""Validation errors as answers a person can act on: per-field errors plus one sentence."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's per-field errors plus one sentence a person can act on."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        errors.append({k: v for k, v in err.items() if k in ("loc", "msg", "type")})
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": errors, "message": f"invalid request: {summary}"}, status_code=422)
