"""The error answers every API route can give, declared in the OpenAPI schema from what the route needs.

A route's own code declares what only it returns (409, 429 ...). What follows
from its dependencies is added here, for every route at once, so a route
added later is documented without anyone remembering to: 401 when it needs a
key (FastAPI marks those with `security`), 403 under /api/admin, 404 when a
path names something, 413 when it takes a body, and the 422 our validation
handler actually sends (FastAPI's default schema would not allow its
`message` nor the string `detail` of a refused URL).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class FieldIssue(BaseModel):
    loc: list[str | int] = Field(description='Where the problem is, e.g. ["body", "url"].')
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx answer: `detail` says what is wrong and how to fix it."""

    detail: str | list[FieldIssue]
    message: str | None = Field(default=None, description="For 422: all field problems in one sentence.")


_REF = "#/components/schemas/ErrorBody"
_COMMON = {
    "401": "No API key, or one that is unknown or revoked.",
    "403": "This route needs an admin API key.",
    "404": "Nothing with this id for the caller's tenant.",
    "413": "The request body is too large.",
    "422": "The request is not valid; `message` says which fields and why.",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF}}}}


def add_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the common error responses to every operation of `schema` (an OpenAPI document), in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorBody"] = error_schema
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            wanted = []
            if operation.get("security"):
                wanted.append("401")
            if path.startswith("/api/admin"):
                wanted.append("403")
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                wanted.append("404")
            if "requestBody" in operation:
                wanted.append("413")
            if "422" in responses or operation.get("parameters") or "requestBody" in operation:
                responses["422"] = _error(_COMMON["422"])
            for code in wanted:
                responses.setdefault(code, _error(_COMMON[code]))
            for code, response in responses.items():
                # Codes a route declared with only a description (409, 429 ...) answer with the same body.
                if code.startswith("4") and "content" not in response:
                    response["content"] = _error("")["content"]
    return schema


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` include the common error responses."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
