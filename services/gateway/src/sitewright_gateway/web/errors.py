"""Validation errors as answers a person can act on: per-field errors plus one sentence."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def summary(errors: Iterable[Mapping[str, Any]], root: str = "") -> str:
    """pydantic's errors as one sentence: `field.path: message; ...` (`root` names a field-less error)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in errors)


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's per-field errors plus one sentence a person can act on."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        errors.append({k: v for k, v in err.items() if k in ("loc", "msg", "type")})
    return JSONResponse({"detail": errors, "message": f"invalid request: {summary(errors)}"}, status_code=422)
