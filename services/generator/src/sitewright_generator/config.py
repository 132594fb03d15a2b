"""Generator settings (`SITEWRIGHT_*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sitewright_runtime.settings import ServiceSettings


class GeneratorSettings(ServiceSettings):
    generator_group: str = "sitewright-generator"
    provider: Literal["offline"] = Field(default="offline", description="Which LLM provider writes the content.")
    progress_interval_s: float = Field(default=1.0, ge=0, description="At most one generation.progress per job this often.")
    expected_output_chars: int = Field(default=6000, gt=0, description="Typical answer size, to estimate progress.")
