"""Session fixtures: a real Kafka-compatible broker and a real MongoDB-compatible server.

Both are started on ports chosen at run time unless `SITEWRIGHT_TEST_KAFKA` /
`SITEWRIGHT_TEST_MONGO_URL` point at servers that are already running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitewright_devstack import infra


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def kafka_bootstrap(run_dir: Path) -> Iterator[str]:
    if env := os.environ.get("SITEWRIGHT_TEST_KAFKA"):
        yield env
        return
    port = infra.free_port()
    broker = infra.start_broker(run_dir / "logs", port)
    yield f"127.0.0.1:{port}"
    broker.stop()


@pytest.fixture(scope="session")
def mongo_url(run_dir: Path) -> Iterator[str]:
    if env := os.environ.get("SITEWRIGHT_TEST_MONGO_URL"):
        yield env
        return
    port = infra.free_port()
    db = infra.start_mongo(run_dir / "mongo", run_dir / "logs", port)
    yield infra.mongo_url(port)
    db.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for database, group and topic names of one test."""
    return uuid.uuid4().hex[:10]
