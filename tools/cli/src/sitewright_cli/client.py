"""The gateway's REST API and job stream as the CLI uses them, with errors a person can act on."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .config import CliConfig

# Exit codes (also in `sitewright --help`).
EXIT_OK = 0
EXIT_JOB_NOT_COMPLETED = 1
EXIT_BAD_INPUT = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_SERVER = 5
STREAM_READ_TIMEOUT_S = 60.0


class CliError(Exception):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Api:
    def __init__(self, config: CliConfig):
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.http = httpx.AsyncClient(base_url=config.url, headers=headers, timeout=httpx.Timeout(30, read=60))

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        self.check(response)
        return response.json()

    @contextlib.asynccontextmanager
    async def stream(self, params: dict[str, str], last_event_id: str | None = None) -> AsyncIterator[httpx.Response]:
        """The SSE job stream (heartbeats come every 15 s by default, so a silent minute means it is dead)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            async with self.http.stream(
                "GET",
                "/api/jobs/stream",
                params=params,
                headers=headers,
                timeout=httpx.Timeout(30, read=STREAM_READ_TIMEOUT_S),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self.check(response)
                yield response
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None

    def unreachable(self, exc: Exception) -> CliError:
        why = "connection refused" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
        return CliError(
            f"cannot reach the gateway at {self.config.url} ({why}); start it with `make up`, or set SITEWRIGHT_URL",
            EXIT_UNREACHABLE,
        )

    def check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        detail = _detail(response)
        if response.status_code == 401:
            where = f" (from {self.config.key_source})" if self.config.key_source else ""
            hint = (
                "set SITEWRIGHT_API_KEY"
                if self.config.api_key
                else "no API key found: set SITEWRIGHT_API_KEY, or run `make up`, "
                "which saves one in .sitewright/api-key"
            )
            raise CliError(f"the gateway refused the API key{where}: {detail}; {hint}", EXIT_AUTH)
        if response.status_code == 403:
            raise CliError(f"not allowed: {detail}", EXIT_AUTH)
        if response.status_code in (400, 404, 409, 413, 422, 429):
            raise CliError(f"{detail} (HTTP {response.status_code})", EXIT_BAD_INPUT)
        raise CliError(f"the gateway failed: HTTP {response.status_code}: {detail}", EXIT_SERVER)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return body["message"]
        if isinstance(body.get("detail"), str):
            return body["detail"]
    return str(body)[:300]
