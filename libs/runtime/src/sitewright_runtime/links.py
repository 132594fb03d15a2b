"""Signed, expiring result links (`/r/{token}`): minted by the notifier, verified by the gateway.

A token names one job of one tenant and when it stops working. It is
`<payload>.<signature>`, both base64url: the payload is compact JSON, the
signature an HMAC-SHA256 of the payload keyed by `SITEWRIGHT_LINK_SECRET`.
Anyone holding the link sees that job's result without an API key, so the
token carries nothing else and a change to any byte of it is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from pydantic import BaseModel, Field, SecretStr, model_validator

# Left at this value, anyone who reads the source can mint links: production refuses it.
INSECURE_LINK_SECRET = "insecure-local-link-secret-change-me"
# Versioned so that a later token format can be told apart from this one.
_PREFIX = b"sitewright-link-v1."
MAX_TOKEN_LENGTH = 1024


class LinkSettings(BaseModel):
    """Mixed into the settings of every service that mints or verifies result links."""

    link_secret: SecretStr = Field(
        default=SecretStr(INSECURE_LINK_SECRET),
        description="Key that signs result links (/r/{token}); a long random value, the same on gateway and notifier.",
    )
    retention_days: float = Field(
        default=7, gt=0, le=3650, description="How long finished jobs are kept, and so how long result links work."
    )

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> LinkSettings:
        if getattr(self, "env", "production") == "production" and (
            self.link_secret.get_secret_value() == INSECURE_LINK_SECRET
        ):
            raise ValueError(
                "SITEWRIGHT_LINK_SECRET is left at its insecure default; in production set it to a long random "
                "value (e.g. `openssl rand -base64 32`), the same for the gateway and the notifier"
            )
        if len(self.link_secret.get_secret_value()) < 16:
            raise ValueError("SITEWRIGHT_LINK_SECRET is too short; use at least 16 random characters")
        return self

    @property
    def retention_s(self) -> float:
        return self.retention_days * 86400


class LinkError(ValueError):
    """A token that must be refused; `expired` tells a link that was good once from a forged one."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.message = message
        self.expired = expired


@dataclass(frozen=True)
class LinkClaims:
    job_id: str
    tenant: str
    expires_at: int  # seconds since the epoch


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), _PREFIX + payload, hashlib.sha256).digest()


def sign_link(secret: str, job_id: str, tenant: str, expires_at: int) -> str:
    """A token for `job_id` of `tenant` that works until `expires_at` (epoch seconds)."""
    payload = json.dumps({"j": job_id, "t": tenant, "e": int(expires_at)}, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_link(secret: str, token: str, *, now: float | None = None) -> LinkClaims:
    """The claims of a genuine, unexpired token; LinkError otherwise.

    The signature is checked before anything in the payload is believed, so a
    forged expiry is reported as forged, not as expired.
    """
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise LinkError("this link is not a valid result link; check that it was copied whole")
    encoded, signature = token.split(".")
    try:
        payload, mac = _unb64(encoded), _unb64(signature)
    except (binascii.Error, ValueError):
        raise LinkError("this link is not a valid result link; check that it was copied whole") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise LinkError("this link's signature does not match; it was altered or was not issued by this service")
    claims = json.loads(payload)
    result = LinkClaims(job_id=str(claims["j"]), tenant=str(claims["t"]), expires_at=int(claims["e"]))
    if (time.time() if now is None else now) >= result.expires_at:
        raise LinkError(
            "this result link has expired; results are kept for a limited time. Ask for the job's result through "
            "the API, or run the job again",
            expired=True,
        )
    return result
