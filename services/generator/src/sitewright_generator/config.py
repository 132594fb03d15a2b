"""Generator settings (`SITEWRIGHT_*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from sitewright_runtime.settings import ServiceSettings

ProviderName = Literal["offline", "anthropic", "openai"]

DEFAULT_MODELS = {"offline": "extractive-v1", "anthropic": "claude-sonnet-4-5", "openai": "gpt-4o-mini"}
DEFAULT_BASE_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com/v1"}


class GeneratorSettings(ServiceSettings):
    generator_group: str = "sitewright-generator"
    generator_provider: ProviderName = Field(
        default="offline",
        description="Who writes the content: offline (no network, the default), anthropic, or openai "
        "(any OpenAI-compatible Chat Completions server: OpenAI, vLLM, Ollama, LM Studio).",
    )
    generator_model: str = Field(default="", description="Model name; empty picks the provider's default.")
    generator_base_url: str = Field(default="", description="API base URL; empty picks the provider's public API.")
    # Validated after the provider (field order), so a production start without a key fails naming this variable.
    generator_api_key: SecretStr | None = Field(
        default=None, validate_default=True, description="The provider's API key."
    )
    generator_temperature: float = Field(default=0.2, ge=0, le=2)
    generator_max_output_tokens: int = Field(default=12_000, ge=256, le=200_000)
    generator_timeout_s: float = Field(
        default=60, gt=0, description="Longest wait for the provider's next bytes (connect, first token, each chunk)."
    )
    generator_total_timeout_s: float = Field(default=900, gt=0, description="Longest one provider call may stream.")
    generator_prompt_tokens: int = Field(
        default=30_000, ge=2_000, description="Input budget of one call; larger sites are split into parts."
    )
    generator_max_parts: int = Field(default=4, ge=1, le=16, description="Parts a large site is split into at most.")
    generator_concurrency: int = Field(
        default=512,
        ge=1,
        le=4096,
        description="Most provider calls in flight at once in this worker, over all jobs and parts. The limit in use "
        "adapts below it: it grows while calls succeed and halves when the provider throttles (limiter.py).",
    )
    generator_concurrency_initial: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Where the adaptive limit starts; a full round doubles it until a throttle.",
    )
    generator_throttle_retries: int = Field(
        default=5,
        ge=0,
        le=50,
        description="Times a call the provider throttled (429, overloaded) is tried again after its Retry-After, "
        "within the attempt and without spending one: a throttled call costs no tokens.",
    )
    # Jobs a generator holds at once: most wait for a provider slot, so thousands fit in one process.
    max_in_flight: int = Field(default=2048, ge=1, le=10_000, description="Messages a worker handles at once.")
    generator_job_token_cap: int = Field(
        default=250_000, ge=1_000, description="Tokens (in + out, all attempts) one job may spend at most."
    )
    progress_interval_s: float = Field(
        default=1.0, ge=0, description="At most one generation.progress per job this often."
    )
    expected_output_chars: int = Field(default=6000, gt=0, description="Typical answer size, to estimate progress.")

    @field_validator("generator_api_key")
    @classmethod
    def _key_required_in_production(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        provider = info.data.get("generator_provider")
        if (
            provider not in (None, "offline")
            and info.data.get("env") == "production"
            and not (v and v.get_secret_value())
        ):
            raise ValueError(
                f"SITEWRIGHT_GENERATOR_API_KEY is required when SITEWRIGHT_GENERATOR_PROVIDER={provider} in production "
                "(a self-hosted server without keys accepts any value)"
            )
        return v

    @property
    def model(self) -> str:
        return self.generator_model or DEFAULT_MODELS[self.generator_provider]

    @property
    def base_url(self) -> str:
        return (self.generator_base_url or DEFAULT_BASE_URLS.get(self.generator_provider, "")).rstrip("/")

    @property
    def api_key(self) -> str:
        return self.generator_api_key.get_secret_value() if self.generator_api_key else ""
