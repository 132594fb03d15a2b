"""What the HTTP providers share: one streamed POST, server-sent events, and failure classification."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .provider import CallStats, GenerationError

# Longest Retry-After honoured as given; a provider asking for more is treated as asking for this.
MAX_RETRY_AFTER_S = 3600.0
_ERROR_BODY_CHARS = 2000
# How vendors word "the prompt does not fit the model's context window".
_CONTEXT = re.compile(
    r"context[ _]length|context window|maximum context|prompt is too long|too many tokens|request_too_large", re.I
)
# Error types sent inside a stream (Anthropic's `error` event) mean what these statuses mean.
_TYPE_STATUS = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "authentication_error": 401,
    "permission_error": 403,
    "invalid_request_error": 400,
    "request_too_large": 413,
    "not_found_error": 404,
    "server_error": 500,
}


class HttpProvider:
    """Base of the LLM providers: an httpx client with the timeouts and the SSE reader they share."""

    name = "http"
    reads_prompt = True

    def __init__(
        self, *, model: str, base_url: str, api_key: str, temperature: float, timeout_s: float, total_timeout_s: float
    ) -> None:
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.total_timeout_s = total_timeout_s
        # The read timeout applies to every wait for bytes: the first token and each later chunk.
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            headers={"user-agent": "sitewright-generator"},
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def events(
        self, path: str, headers: dict[str, str], body: dict[str, Any], stats: CallStats
    ) -> AsyncIterator[tuple[str, str]]:
        """POST `body` and yield the (event, data) pairs of the server-sent event stream."""
        deadline = time.monotonic() + self.total_timeout_s
        try:
            async with self.client.stream("POST", path, json=body, headers=headers) as response:
                if response.status_code != 200:
                    raw = await response.aread()
                    raise _http_failure(response.status_code, raw, response.headers)
                stats.accepted = True
                async for event in _sse(response.aiter_lines()):
                    if time.monotonic() > deadline:
                        raise GenerationError(
                            "provider_timeout", f"the answer took longer than {self.total_timeout_s:g}s", retryable=True
                        )
                    yield event
        except httpx.TimeoutException as exc:
            what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the answer"
            raise GenerationError(
                "provider_timeout", f"timed out {what} ({type(exc).__name__})", retryable=True
            ) from None
        except httpx.ConnectError as exc:
            raise GenerationError("provider_unreachable", f"cannot connect: {exc}", retryable=True) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if stats.accepted:
                raise GenerationError("stream_truncated", f"the stream broke off: {exc}", retryable=True) from None
            raise GenerationError("provider_unreachable", f"the connection failed: {exc}", retryable=True) from None
        except httpx.HTTPError as exc:
            raise GenerationError("provider_error", f"{type(exc).__name__}: {exc}", retryable=True) from None


def decode_event(data: str) -> dict[str, Any]:
    """One event's JSON data; a provider that sends anything else has broken its protocol."""
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise GenerationError("provider_protocol_error", f"an event is not JSON ({exc})", retryable=True) from None
    if not isinstance(value, dict):
        raise GenerationError("provider_protocol_error", "an event is not a JSON object", retryable=True)
    return value


async def _sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events (WHATWG): `event:` and `data:` fields, dispatched at each blank line."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment, e.g. a keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        # The stream ended without the blank line that completes this event: dispatch it anyway,
        # the provider's own end marker (or its absence) tells whether the answer is complete.
        yield event or "message", "\n".join(data)


def error_fields(payload: Any) -> tuple[str, str, str]:
    """(type, code, message) from a vendor's error body: {"error": {"type", "code", "message"}}."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, str):
        return "", "", error
    if not isinstance(error, dict):
        return "", "", ""
    return str(error.get("type") or ""), str(error.get("code") or ""), str(error.get("message") or "")


def classify(
    status: int | None, kind: str, code: str, message: str, retry_after_s: float | None = None
) -> GenerationError:
    """The failure a provider's error means: what to call it, and whether a retry can help."""
    status = status or _TYPE_STATUS.get(kind, 500)
    said = f"HTTP {status}" + (f" {kind or code}" if kind or code else "") + (f": {message}" if message else "")
    if status in (401, 403):
        return GenerationError("auth_failed", f"{said}; check SITEWRIGHT_GENERATOR_API_KEY", retryable=False)
    if status == 429 and "quota" in f"{code} {kind}":
        # Out of credit: waiting will not help until someone pays.
        return GenerationError("quota_exhausted", said, retryable=False)
    if status == 429:
        return GenerationError("rate_limited", said, retryable=True, retry_after_s=retry_after_s)
    if status in (408, 504):
        return GenerationError("provider_timeout", said, retryable=True)
    if status in (503, 529) or kind == "overloaded_error":
        return GenerationError("provider_overloaded", said, retryable=True, retry_after_s=retry_after_s)
    if status >= 500:
        return GenerationError("provider_error", said, retryable=True, retry_after_s=retry_after_s)
    if status == 413 or _CONTEXT.search(f"{code} {message}"):
        return GenerationError(
            "context_exhausted", f"{said}; lower SITEWRIGHT_GENERATOR_PROMPT_TOKENS", retryable=False
        )
    return GenerationError("request_rejected", said, retryable=False)


def _http_failure(status: int, raw: bytes, headers: httpx.Headers) -> GenerationError:
    text = raw[:_ERROR_BODY_CHARS].decode("utf-8", "replace")
    try:
        kind, code, message = error_fields(json.loads(text))
    except json.JSONDecodeError:
        kind, code, message = "", "", " ".join(text.split())[:300]
    return classify(status, kind, code, message, retry_after(headers))


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the provider asked us to wait: `retry-after-ms`, or `retry-after` in seconds or as a date."""
    if ms := headers.get("retry-after-ms"):
        try:
            return min(max(float(ms) / 1000, 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
