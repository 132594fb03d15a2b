"""Loopback HTTP servers that speak the providers' real streaming APIs, with scripted failures.

`FakeLLM("anthropic")` answers `POST /v1/messages` with Anthropic's server-sent event types
(message_start, content_block_*, ping, message_delta, message_stop, error); `FakeLLM("openai")`
answers `POST /v1/chat/completions` with OpenAI's `chat.completion.chunk` lines and `[DONE]`. Errors
have each vendor's status codes, headers (Retry-After) and error bodies. Which behaviour a request
gets is scripted per site: the prompt names the site's host, and the n-th request for a host plays
the n-th step of its script (the last step repeats).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_ANSWER: dict[str, Any] = {
    "meta": {
        "title": "Crumb & Co | Sourdough bakery in Portland",
        "description": "Naturally leavened bread, croissants and celebration cakes baked every morning "
        "on Alder Street in Portland.",
    },
    "content": [
        {"heading": "Bread that takes its time", "body": "Every loaf rises for eighteen hours before it is baked."},
        {"heading": "Pastries", "body": "Croissants are laminated by hand each night with cultured butter."},
        {"heading": "Visit the bakery", "body": "The doors open at seven every morning on Alder Street."},
    ],
    "faq": [
        {"question": "Do you bake gluten-free bread?", "answer": "Yes, a buckwheat loaf every Friday."},
        {"question": "Can I order a cake?", "answer": "Yes, with two days' notice."},
        {"question": "Where is the bakery?", "answer": "On Alder Street in Portland."},
    ],
    "schema": {"@context": "https://schema.org", "@type": "Bakery", "name": "Crumb & Co"},
}
# What a chatty model often sends: prose, a fence, and a title far over the limit. Repairable.
REPAIRABLE_ANSWER = (
    "Here is the SEO content you asked for:\n\n```json\n"
    + json.dumps(
        GOOD_ANSWER
        | {
            "meta": GOOD_ANSWER["meta"]
            | {
                "title": "Crumb & Co Bakery | Sourdough Bread, Croissants, Celebration Cakes and Coffee"
                " - Open Every Day"
            }
        },
        indent=2,
    )
    + "\n```\nLet me know if you would like any changes."
)
MALFORMED_ANSWER = "I am sorry, but I can only describe the site in prose: it is a bakery in Portland."

_HOST = re.compile(r"\(host ([^)\s]+)\)")


class FakeLLM:
    """One provider's API on 127.0.0.1 at a free port; `with FakeLLM(...) as llm:` serves `llm.base_url`."""

    def __init__(
        self,
        flavour: str,
        script: dict[str, list[str]] | None = None,
        *,
        delta_chars: int = 40,
        delta_delay_s: float = 0,
    ) -> None:
        assert flavour in ("anthropic", "openai")
        self.flavour = flavour
        self.script = script or {}
        self.delta_chars = delta_chars
        self.delta_delay_s = delta_delay_s
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        owner = self

        class Handler(_Handler):
            fake = owner

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def base_url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}" + ("/v1" if self.flavour == "openai" else "")

    def __enter__(self) -> FakeLLM:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def step_for(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[str, str]:
        prompt = " ".join(m.get("content", "") for m in body.get("messages", []))
        found = _HOST.search(prompt)
        host = found.group(1) if found else ""
        with self.lock:
            self.requests.append({"host": host, "body": body, "headers": headers, "at": time.time()})
            n = self.calls.get(host, 0)
            self.calls[host] = n + 1
        steps = self.script.get(host, ["ok"])
        return host, steps[min(n, len(steps) - 1)]

    def requests_for(self, host: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["host"] == host]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeLLM

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.loads(raw)
        expected = "/v1/messages" if self.fake.flavour == "anthropic" else "/v1/chat/completions"
        if self.path != expected:
            return self._error(404, "not_found_error", "not_found", f"no route {self.path}")
        host, step = self.fake.step_for(body, {k.lower(): v for k, v in self.headers.items()})
        with self.fake.lock:
            self.fake.in_flight += 1
            self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake.in_flight)
        try:
            self._play(host, step, body)
        finally:
            with self.fake.lock:
                self.fake.in_flight -= 1

    def _play(self, host: str, step: str, body: dict[str, Any]) -> None:
        name, _, arg = step.partition(":")
        prompt = " ".join(m.get("content", "") for m in body["messages"])
        answer = {"ok": json.dumps(GOOD_ANSWER), "repairable": REPAIRABLE_ANSWER, "malformed": MALFORMED_ANSWER}
        match name:
            case "ok" | "repairable" | "malformed":
                self._stream(prompt, answer[name], body)
            case "rate_limit":
                self._error(
                    429, "rate_limit_error", "rate_limit_exceeded", "Rate limit reached", {"retry-after": arg or "1"}
                )
            case "quota":
                self._error(429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota")
            case "error500":
                self._error(500, "api_error", "server_error", "Internal server error")
            case "overloaded":
                self._error(
                    529 if self.fake.flavour == "anthropic" else 503, "overloaded_error", "overloaded", "Overloaded"
                )
            case "auth":
                self._error(401, "authentication_error", "invalid_api_key", "invalid x-api-key")
            case "context":
                self._error(
                    400,
                    "invalid_request_error",
                    "context_length_exceeded",
                    "prompt is too long: 250000 tokens > 200000 maximum"
                    if self.fake.flavour == "anthropic"
                    else "This model's maximum context length is 8192 tokens.",
                )
            case "stall":
                self._stream(prompt, json.dumps(GOOD_ANSWER), body, stall_s=float(arg or 30))
            case "truncate":  # the connection drops mid-body
                self._stream(prompt, json.dumps(GOOD_ANSWER), body, cut=True)
            case "early_end":  # the body ends cleanly, but before the provider's end marker
                self._stream(prompt, json.dumps(GOOD_ANSWER), body, cut=True, clean=True)
            case "max_tokens":
                self._stream(prompt, json.dumps(GOOD_ANSWER)[:300], body, stop="max_tokens")
            case "refusal":
                self._stream(prompt, "", body, stop="refusal")
            case "midstream_error":
                self._stream(prompt, json.dumps(GOOD_ANSWER)[:200], body, error="overloaded_error")
            case "bad_sse":
                self._stream(prompt, json.dumps(GOOD_ANSWER)[:200], body, garbage=True)
            case _:
                raise AssertionError(f"unknown step {step!r} for {host}")

    # ---- transport ----------------------------------------------------------------------------

    def _error(self, status: int, kind: str, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        if self.fake.flavour == "anthropic":
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {
            "content-type": "application/json",
            "content-length": str(len(data)),
            **(headers or {}),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _stream(
        self,
        prompt: str,
        text: str,
        body: dict[str, Any],
        *,
        stop: str = "",
        stall_s: float = 0,
        cut: bool = False,
        error: str = "",
        garbage: bool = False,
        clean: bool = False,
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        vendor = _Anthropic(body) if self.fake.flavour == "anthropic" else _OpenAI(body)
        tokens_in, tokens_out = max(1, len(prompt) // 4), max(1, len(text) // 4)
        self._chunk(vendor.start(tokens_in))
        if stall_s:
            self.fake.stopping.wait(stall_s)
            self.close_connection = True
            return
        deltas = [text[i : i + self.fake.delta_chars] for i in range(0, len(text), self.fake.delta_chars)]
        for i, delta in enumerate(deltas):
            if cut and i == len(deltas) // 2:
                if clean:
                    self._chunk(b"")
                else:
                    self.close_connection = True  # no terminating chunk: the body is incomplete
                return
            self._chunk(vendor.delta(delta))
            if self.fake.delta_delay_s:
                self.fake.stopping.wait(self.fake.delta_delay_s)
        if garbage:
            self._chunk(b"data: {this is not json\n\n")
        if error:
            self._chunk(vendor.error(error))
        else:
            self._chunk(vendor.finish(stop or "end", tokens_in, tokens_out))
        self._chunk(b"")  # the terminating zero-length chunk


def _sse(event: str | None, data: Any) -> bytes:
    line = f"event: {event}\n" if event else ""
    return (line + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n").encode()


class _Anthropic:
    def __init__(self, body: dict[str, Any]) -> None:
        self.model = body["model"]

    def start(self, tokens_in: int) -> bytes:
        message = {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": 1},
        }
        return (
            _sse("message_start", {"type": "message_start", "message": message})
            + _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            + _sse("ping", {"type": "ping"})
        )

    def delta(self, text: str) -> bytes:
        return _sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        )

    def finish(self, stop: str, tokens_in: int, tokens_out: int) -> bytes:
        reason = {"end": "end_turn", "max_tokens": "max_tokens", "refusal": "refusal"}[stop]
        return (
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": {"output_tokens": tokens_out},
                },
            )
            + _sse("message_stop", {"type": "message_stop"})
        )

    def error(self, kind: str) -> bytes:
        return _sse("error", {"type": "error", "error": {"type": kind, "message": "Overloaded"}})


class _OpenAI:
    def __init__(self, body: dict[str, Any]) -> None:
        self.model = body["model"]
        self.usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return _sse(
            None,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": self.model,
                "choices": choices,
                **extra,
            },
        )

    def start(self, tokens_in: int) -> bytes:
        self.tokens_in = tokens_in
        return self._chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])

    def delta(self, text: str) -> bytes:
        return self._chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    def finish(self, stop: str, tokens_in: int, tokens_out: int) -> bytes:
        if stop == "refusal":
            return self._chunk([{"index": 0, "delta": {"refusal": "I can't help with that."}, "finish_reason": "stop"}])
        reason = {"end": "stop", "max_tokens": "length"}[stop]
        out = self._chunk([{"index": 0, "delta": {}, "finish_reason": reason}])
        if self.usage:
            out += self._chunk(
                [],
                usage={
                    "prompt_tokens": tokens_in,
                    "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
            )
        return out + _sse(None, "[DONE]")

    def error(self, kind: str) -> bytes:
        return _sse(None, {"error": {"message": "The server is overloaded", "type": kind, "code": None}})
