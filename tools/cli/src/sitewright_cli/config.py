"""Where the CLI finds the gateway and its API key (environment first, then what `make up` saved)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
SAVED_KEY = Path(".sitewright") / "api-key"


@dataclass(frozen=True)
class CliConfig:
    url: str
    api_key: str | None
    key_source: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CliConfig:
        env = dict(os.environ) if env is None else env
        url = (env.get("SITEWRIGHT_URL") or DEFAULT_URL).rstrip("/")
        key = env.get("SITEWRIGHT_API_KEY", "").strip()
        if key:
            return cls(url, key, "SITEWRIGHT_API_KEY")
        if SAVED_KEY.is_file():
            return cls(url, SAVED_KEY.read_text().strip() or None, str(SAVED_KEY))
        return cls(url, None, "")
