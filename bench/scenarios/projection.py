"""Scenario 4: events per second the projector applies from a pre-filled topic (a read-model rebuild)."""

from __future__ import annotations

import asyncio
import json
import sys

from ..common import ROOT, Bench


async def run(bench: Bench, timeout_s: float = 600) -> dict:
    out = bench.work / "projection.json"
    env = bench.stack.env()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.projector_run",
        env["SITEWRIGHT_KAFKA_BOOTSTRAP"],
        env["SITEWRIGHT_MONGO_URL"],
        bench.stack.config.topic_prefix + "jobs.events",
        str(out),
        cwd=ROOT,
    )
    if await asyncio.wait_for(proc.wait(), timeout_s) != 0:
        raise RuntimeError("the projector run failed")
    return json.loads(out.read_text())
