"""Any OpenAI-compatible Chat Completions endpoint, streamed: OpenAI, vLLM, Ollama, LM Studio."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from .llm_http import HttpProvider, classify, decode_event, error_fields
from .provider import CallStats, GenerationError, Part


class OpenAICompatProvider(HttpProvider):
    name = "openai"

    async def stream(self, part: Part, stats: CallStats) -> AsyncGenerator[str, None]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": part.prompt}],
            "temperature": self.temperature,
            "max_tokens": part.max_tokens,
            "stream": True,
            # Ask for a last chunk with the token counts (OpenAI, vLLM and Ollama send it).
            "stream_options": {"include_usage": True},
        }
        # Self-hosted servers often need no key; sending an empty bearer token upsets some of them.
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        done = False
        async for _event, data in self.events("/chat/completions", headers, body, stats):
            if data.strip() == "[DONE]":
                done = True
                break
            payload = decode_event(data)
            if "error" in payload:
                # vLLM and OpenAI report failures after the 200 as a chunk with an error object.
                raise classify(None, *error_fields(payload))
            if usage := payload.get("usage"):
                stats.tokens_in = int(usage.get("prompt_tokens") or stats.tokens_in)
                stats.tokens_out = int(usage.get("completion_tokens") or stats.tokens_out)
            for choice in payload.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("refusal"):
                    raise GenerationError("content_refused", f"the model refused: {delta['refusal']}", retryable=False)
                if delta.get("content"):
                    yield delta["content"]
                finish = choice.get("finish_reason")
                if finish == "content_filter":
                    raise GenerationError(
                        "content_refused", "the answer was stopped by the content filter", retryable=False
                    )
                if finish:
                    stats.hit_max_tokens = finish == "length"
        if not done:
            raise GenerationError("stream_truncated", "the stream ended before [DONE]", retryable=True)
