"""Real local servers the notifier talks to: a Standard Webhooks receiver, a Twilio-shaped API, an SMTP server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sitewright_devstack import infra


def verify_webhook(secrets: Sequence[str], headers: dict[str, str], body: bytes, *, tolerance_s: float = 300) -> bool:
    """A Standard Webhooks receiver's check, written from the spec rather than from the notifier's code."""
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False  # too old: a captured request replayed later
    signed = f"{msg_id}.{timestamp}.".encode() + body
    given = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split(" ") if s.startswith("v1,")]
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, g) for g in given):
            return True
    return False


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ScriptedServer:
    """An HTTP server answering POSTs with `statuses` in turn (the last one repeats), recording each request."""

    statuses: Sequence[int] = (200,)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    requests: list[Request] = field(default_factory=list)

    def __enter__(self) -> ScriptedServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                status, headers, answer = owner.answer(request)
                owner.requests.append(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        status = self.statuses[min(len(self.requests), len(self.statuses) - 1)]
        return status, self.headers, self.body


@dataclass
class WebhookReceiver(ScriptedServer):
    """A receiver as the spec describes one: verifies, and treats a webhook-id it has seen as a duplicate."""

    secrets: list[str] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    _processed: set[str] = field(default_factory=set)

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        ok = verify_webhook(self.secrets, request.headers, request.body)
        self.verified.append(ok)
        if not ok:
            return 401, {}, b"bad signature"
        status, headers, body = super().answer(request)
        msg_id = request.headers["webhook-id"]
        if 200 <= status < 300:
            if msg_id in self._processed:
                self.duplicates.append(msg_id)
            self._processed.add(msg_id)
        return status, headers, body


@dataclass
class TwilioApi(ScriptedServer):
    """Shaped like Twilio's Messages API: form POST with basic auth, 201 and a JSON message resource."""

    account_sid: str = "AC0123456789abcdef0123456789abcdef"
    auth_token: str = "twilio-test-token"
    error_body: dict[str, Any] | None = None

    def answer(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {}, b'{"code": 20404, "message": "The requested resource was not found"}'
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return 401, {}, b'{"code": 20003, "message": "Authenticate"}'
        status, headers, _ = super().answer(request)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if status == 201:
            resource = {
                "sid": f"SM{len(self.requests):032d}",
                "status": "queued",
                "to": form.get("To"),
                "from": form.get("From"),
                "body": form.get("Body"),
                "account_sid": self.account_sid,
            }
            return 201, {"content-type": "application/json"}, json.dumps(resource).encode()
        body = self.error_body or {"code": 20500 if status >= 500 else 20429, "message": f"HTTP {status}"}
        return status, {"content-type": "application/json", **headers}, json.dumps(body).encode()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: bytes
    tls: bool
    login: str | None


class MailHandler:
    """aiosmtpd handler: keeps each message, and answers the first `refuse_rcpt` RCPTs with a temporary 451."""

    def __init__(self, refuse_rcpt: int = 0):
        self.messages: list[Mail] = []
        self.refuse_rcpt = refuse_rcpt
        self.rcpt_calls = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        self.rcpt_calls += 1
        if self.rcpt_calls <= self.refuse_rcpt:
            return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None, login)
        )
        return "250 Message accepted"


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for localhost and 127.0.0.1, made with the openssl command."""
    cert, key = directory / "smtp.crt", directory / "smtp.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def smtp_server(
    handler: MailHandler, *, cert: tuple[Path, Path] | None = None, users: dict[str, str] | None = None
) -> Controller:
    """A started aiosmtpd server on a free port; with `cert` it requires STARTTLS, with `users` a login."""
    options: dict[str, Any] = {}
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        options |= {"tls_context": context, "require_starttls": True}
    if users is not None:

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and users.get(auth_data.login.decode()) == auth_data.password.decode()
            )
            return AuthResult(success=ok, auth_data=auth_data)

        options |= {"authenticator": authenticate, "auth_required": True, "auth_require_tls": cert is not None}
    controller = Controller(handler, hostname="127.0.0.1", port=infra.free_port(), **options)
    controller.start()
    return controller
