"""What the HTTP providers share: one streamed POST, server-sent events, and failure classification."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
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
        self,
        *,
        model: str,
        base_url: str,
        api_key: str,
        temperature: float,
        timeout_s: float,
        total_timeout_s: float,
        max_connections: int = 100,
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
            # One connection per call in flight: the concurrency limit, not the pool, decides how many.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
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
                stats.exhausted_for_s = exhausted_for(response.headers)
                async for event in _sse(response.aiter_lines()):
                    if time.monotonic() > deadline:
                        raise GenerationError(
                            "provider_timeout",
                            PLAIN["provider_timeout"],
                            retryable=True,
                            detail=f"the answer took longer than {self.total_timeout_s:g}s",
                        )
                    yield event
        except httpx.TimeoutException as exc:
            what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the answer"
            raise GenerationError(
                "provider_timeout",
                PLAIN["provider_timeout"],
                retryable=True,
                detail=f"timed out {what} ({type(exc).__name__})",
            ) from None
        except httpx.ConnectError as exc:
            raise GenerationError(
                "provider_unreachable", PLAIN["provider_unreachable"], retryable=True, detail=f"cannot connect: {exc}"
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if stats.accepted:
                raise GenerationError(
                    "stream_truncated", PLAIN["stream_truncated"], retryable=True, detail=f"the stream broke off: {exc}"
                ) from None
            raise GenerationError(
                "provider_unreachable",
                PLAIN["provider_unreachable"],
                retryable=True,
                detail=f"connection failed: {exc}",
            ) from None
        except httpx.HTTPError as exc:
            raise GenerationError(
                "provider_error", PLAIN["provider_error"], retryable=True, detail=f"{type(exc).__name__}: {exc}"
            ) from None


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


# What a tenant reads when the provider fails: plain words, never the vendor's own text (account names,
# organisation ids, key hints), which goes to the operator's logs as the error's `detail`.
PLAIN = {
    "auth_failed": "the LLM provider refused this deployment's credentials",
    "quota_exhausted": "this deployment's LLM quota is used up",
    "rate_limited": "the LLM provider asked to slow down",
    "provider_timeout": "the LLM provider did not answer in time",
    "provider_overloaded": "the LLM provider is overloaded",
    "provider_error": "the LLM provider failed to answer",
    "provider_unreachable": "the LLM provider could not be reached",
    "stream_truncated": "the LLM provider's answer broke off",
    "context_exhausted": "the site's text did not fit in what the LLM can read at once",
    "request_rejected": "the LLM provider rejected the request",
}


def classify(
    status: int | None, kind: str, code: str, message: str, retry_after_s: float | None = None
) -> GenerationError:
    """The failure a provider's error means: what to call it, and whether a retry can help."""
    status = status or _TYPE_STATUS.get(kind, 500)
    said = f"HTTP {status}" + (f" {kind or code}" if kind or code else "") + (f": {message}" if message else "")

    def failure(code: str, retryable: bool, hint: str = "") -> GenerationError:
        after = retry_after_s if retryable else None
        return GenerationError(code, PLAIN[code], retryable=retryable, retry_after_s=after, detail=said + hint)

    if status in (401, 403):
        return failure("auth_failed", False, "; check SITEWRIGHT_GENERATOR_API_KEY")
    if status == 429 and "quota" in f"{code} {kind}":
        # Out of credit: waiting will not help until someone pays.
        return failure("quota_exhausted", False)
    if status == 429:
        return failure("rate_limited", True)
    if status in (408, 504):
        return GenerationError("provider_timeout", PLAIN["provider_timeout"], retryable=True, detail=said)
    if status in (503, 529) or kind == "overloaded_error":
        return failure("provider_overloaded", True)
    if status >= 500:
        return failure("provider_error", True)
    if status == 413 or _CONTEXT.search(f"{code} {message}"):
        return failure("context_exhausted", False, "; lower SITEWRIGHT_GENERATOR_PROMPT_TOKENS")
    return failure("request_rejected", False)


def _http_failure(status: int, raw: bytes, headers: httpx.Headers) -> GenerationError:
    text = raw[:_ERROR_BODY_CHARS].decode("utf-8", "replace")
    try:
        kind, code, message = error_fields(json.loads(text))
    except json.JSONDecodeError:
        kind, code, message = "", "", " ".join(text.split())[:300]
    return classify(status, kind, code, message, retry_after(headers))


# Rate-limit headers: (remaining, reset) pairs, OpenAI's (reset as a duration, "6m0s") and Anthropic's (reset
# as an RFC 3339 time). Requests and tokens alike: either one at zero means the next call would be throttled.
_RATE_LIMIT_HEADERS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
    ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def exhausted_for(headers: httpx.Headers) -> float | None:
    """Seconds until the provider takes requests again, when a rate-limit header says none is left; else None."""
    waits = []
    for remaining, reset in _RATE_LIMIT_HEADERS:
        if headers.get(remaining, "").strip() != "0":
            continue
        wait = _reset_s(headers.get(reset, ""))
        waits.append(1.0 if wait is None else wait)  # no usable reset: a second, as a 429 without Retry-After
    return min(max(waits), MAX_RETRY_AFTER_S) if waits else None


def _reset_s(value: str) -> float | None:
    """A reset as OpenAI writes it (`1s`, `6m0s`, `20ms`) or as Anthropic does (an RFC 3339 time)."""
    value = value.strip()
    if not value:
        return None
    if value[0].isdigit() and (parts := _DURATION.findall(value)) and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    try:
        return max(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - time.time(), 0.0)
    except ValueError:
        return None


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
