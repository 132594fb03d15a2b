"""Schemathesis against a gateway process: no 5xx, and every answer matches the OpenAPI schema.

The gateway runs as `python -m sitewright_gateway` on a free loopback port
over the session's real broker and database; `schemathesis run` (the CLI,
as a person would run it) sends generated requests with the admin key.
The number of examples per operation is bounded to keep this near a minute.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from sitewright_devstack import infra
from tests.helpers import TEST_API_KEY, eventually

MAX_EXAMPLES = int(os.environ.get("SITEWRIGHT_SCHEMATHESIS_EXAMPLES", "10"))


@pytest.mark.timeout(900)  # minutes on a 2-core machine shared by other test runs; see the closing note
async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(
    kafka_bootstrap, mongo_url, unique, tmp_path: Path
):
    port = infra.free_port()
    env = {
        "SITEWRIGHT_ENV": "local",
        "SITEWRIGHT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SITEWRIGHT_MONGO_URL": mongo_url,
        "SITEWRIGHT_MONGO_DB": f"st_{unique}",
        "SITEWRIGHT_TOPIC_PREFIX": f"st{unique}.",
        "SITEWRIGHT_TOPIC_PARTITIONS": "2",
        "SITEWRIGHT_PROJECTOR_GROUP": f"projector-{unique}",
        "SITEWRIGHT_GATEWAY_PORT": str(port),
        "SITEWRIGHT_BOOTSTRAP_API_KEY": TEST_API_KEY,
        "SITEWRIGHT_LOG_FORMAT": "json",
        # Generated jobs should reach the write path, not mostly the limiter (which has its own test).
        "SITEWRIGHT_RATE_JOBS_PER_S": "1000",
        "SITEWRIGHT_RATE_JOBS_BURST": "1000",
    }
    gateway = infra.spawn("gateway", [sys.executable, "-m", "sitewright_gateway"], tmp_path, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:

            async def ready():
                assert gateway.proc.poll() is None, gateway.log_path.read_text()[-2000:]
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=180, what="the gateway process ready")

        run = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{base}/openapi.json",
            "-H",
            f"Authorization: Bearer {TEST_API_KEY}",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            "7",
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(run.communicate(), timeout=840)
        text = out.decode(errors="replace")
        (tmp_path / "schemathesis.txt").write_text(text)
        print(text[-3000:])
        assert run.returncode == 0, f"schemathesis found problems:\n{text[-8000:]}"
        cases = _cases(text)
        print(f"schemathesis: {cases} test cases ran")
        assert cases >= 100, f"only {cases} cases ran; the run did not exercise the API"
        assert TEST_API_KEY not in gateway.log_path.read_text(), "the key reached the gateway's log"
    finally:
        gateway.stop()


def _cases(output: str) -> int:
    """Test cases schemathesis ran, from its summary ("Test cases: 385 generated, 385 passed")."""
    found = re.search(r"Test cases:\s+(\d+) generated", output)
    assert found, f"no case count in schemathesis' summary:\n{output[-2000:]}"
    return int(found.group(1))
