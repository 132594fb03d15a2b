"""Anthropic's Messages API, streamed (https://docs.anthropic.com/en/api/messages-streaming)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from .llm_http import HttpProvider, classify, decode_event, error_fields
from .provider import CallStats, GenerationError, Part

API_VERSION = "2023-06-01"


class AnthropicProvider(HttpProvider):
    name = "anthropic"

    async def stream(self, part: Part, stats: CallStats) -> AsyncGenerator[str, None]:
        body = {
            "model": self.model,
            "max_tokens": part.max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "messages": [{"role": "user", "content": part.prompt}],
        }
        headers = {"x-api-key": self.api_key, "anthropic-version": API_VERSION}
        stopped = False
        async for event, data in self.events("/v1/messages", headers, body, stats):
            payload = decode_event(data)
            kind = payload.get("type", event)
            if kind == "message_start":
                usage = (payload.get("message") or {}).get("usage") or {}
                # Cached input is billed too (at other rates); the cap counts every token read.
                stats.tokens_in = sum(
                    int(usage.get(key) or 0)
                    for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
                )
                stats.tokens_out = int(usage.get("output_tokens") or 0)
            elif kind == "content_block_delta":
                delta = payload.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield delta["text"]
            elif kind == "message_delta":
                stats.tokens_out = int((payload.get("usage") or {}).get("output_tokens") or stats.tokens_out)
                delta = payload.get("delta") or {}
                reason = delta.get("stop_reason")
                if reason == "refusal":
                    why = (delta.get("stop_details") or {}).get("explanation") or "stop_reason refusal"
                    raise GenerationError("content_refused", f"the model declined to answer: {why}", retryable=False)
                # Either limit leaves the answer cut off where it stopped.
                stats.hit_max_tokens = reason in ("max_tokens", "model_context_window_exceeded")
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                # An error after the 200, e.g. overloaded_error part-way through the answer.
                raise classify(None, *error_fields(payload))
        if not stopped:
            raise GenerationError("stream_truncated", "the stream ended before message_stop", retryable=True)
