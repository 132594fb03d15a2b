"""Scenario 6: resident memory of each service process (and of the broker and database)."""

from __future__ import annotations

from ..common import Bench


def snapshot(bench: Bench) -> dict[str, float | None]:
    return bench.memory()
