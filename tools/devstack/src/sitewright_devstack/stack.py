"""The whole system on one machine: broker, database, topics, gateway and the three workers.

Each piece is its own process with its log under `<home>/logs`; the
database keeps its data under `<home>/mongo`, so a second start reuses it.
The services get their addresses through the same `SITEWRIGHT_*` settings
they use anywhere else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sitewright_contracts import Topics
from sitewright_runtime.kafka import ensure_topics

from . import infra
from . import prometheus as prometheus_server

SERVICES = ("gateway", "crawler", "generator", "notifier")


@dataclass
class StackConfig:
    home: Path = Path(".sitewright")
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    broker_port: int = 0  # 0: a free port
    mongo_port: int = 0
    partitions: int = 8
    topic_prefix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    # Prometheus starts when its binary is installed; `prometheus_dir` holds prometheus.yml and the rules.
    prometheus: bool = True
    prometheus_port: int = 0
    prometheus_dir: Path = prometheus_server.DEPLOY_PROMETHEUS
    prometheus_interval: str | None = None  # overrides scrape and evaluation interval (tests use 1s)
    api_key: str = ""  # empty: the key saved under `home`, created on first start
    services: tuple[str, ...] = SERVICES  # fewer for a benchmark that drives jobs with synthetic events
    # A service's command instead of `python -m sitewright_<name>` (the benchmark's no-work stages); same env.
    commands: dict[str, list[str]] = field(default_factory=dict)


class Stack:
    """Starts and stops everything; `children` maps a name to its process."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.children: dict[str, infra.Child] = {}
        self.broker_port = config.broker_port or infra.free_port()
        self.mongo_port = config.mongo_port or infra.free_port()
        self.gateway_port = config.gateway_port or infra.free_port()
        self.prometheus_port = config.prometheus_port or infra.free_port()
        self.prometheus_started = False
        # Where each service process serves /metrics: label -> (service, host:port); Prometheus' targets.
        self.metrics: dict[str, tuple[str, str]] = {}
        self.api_key = config.api_key or self._saved_key()

    def _saved_key(self) -> str:
        """The stack's admin key: made once, kept in `<home>/api-key` (mode 600) so restarts keep it."""
        path = self.config.home / "api-key"
        if path.exists():
            return path.read_text().strip()
        self.config.home.mkdir(parents=True, exist_ok=True)
        key = "sw_" + secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key

    @property
    def headers(self) -> dict[str, str]:
        """What a client sends to be the stack's admin."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def logs(self) -> Path:
        return self.config.home / "logs"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.host}:{self.gateway_port}"

    @property
    def prometheus_url(self) -> str | None:
        return f"http://{self.config.host}:{self.prometheus_port}" if self.prometheus_started else None

    @property
    def bootstrap(self) -> str:
        return f"{self.config.host}:{self.broker_port}"

    def env(self) -> dict[str, str]:
        """The settings every service process gets."""
        return {
            "SITEWRIGHT_ENV": "local",
            "SITEWRIGHT_KAFKA_BOOTSTRAP": self.bootstrap,
            "SITEWRIGHT_MONGO_URL": infra.mongo_url(self.mongo_port, self.config.host),
            "SITEWRIGHT_TOPIC_PARTITIONS": str(self.config.partitions),
            "SITEWRIGHT_TOPIC_PREFIX": self.config.topic_prefix,
            "SITEWRIGHT_GATEWAY_HOST": self.config.host,
            "SITEWRIGHT_GATEWAY_PORT": str(self.gateway_port),
            "SITEWRIGHT_PUBLIC_URL": self.gateway_url,
            "SITEWRIGHT_LOG_FORMAT": "json",
            "SITEWRIGHT_BOOTSTRAP_API_KEY": self.api_key,
            # Loopback may be crawled in local mode, but never the stack's own services through it.
            "SITEWRIGHT_PROTECTED_PORTS": json.dumps(
                [self.broker_port, self.mongo_port, self.gateway_port, self.prometheus_port]
            ),
            **self.config.extra_env,
        }

    async def start(self) -> None:
        self.config.home.mkdir(parents=True, exist_ok=True)
        for port, what, variable in (
            (self.broker_port, "broker", "SITEWRIGHT_BROKER_PORT"),
            (self.mongo_port, "database", "SITEWRIGHT_MONGO_PORT"),
            (self.gateway_port, "gateway", "SITEWRIGHT_GATEWAY_PORT"),
        ):
            infra.ensure_free(port, what, variable, self.config.host)
        self.children["broker"] = await asyncio.to_thread(
            infra.start_broker, self.logs, self.broker_port, self.config.host
        )
        self.children["mongodb"] = await asyncio.to_thread(
            infra.start_mongo, self.config.home / "mongo", self.logs, self.mongo_port, self.config.host
        )
        await ensure_topics(self.bootstrap, Topics(self.config.topic_prefix).all, self.config.partitions)
        for name in self.config.services:
            self.start_service(name)
        await asyncio.to_thread(
            infra.wait_for_port,
            self.config.host,
            self.gateway_port,
            timeout_s=120,
            proc=self.children["gateway"].proc,
            name="gateway",
        )
        if self.config.prometheus and prometheus_server.binary():
            try:
                infra.ensure_free(self.prometheus_port, "Prometheus", "SITEWRIGHT_PROMETHEUS_PORT", self.config.host)
            except RuntimeError:
                # Debian's package runs its own Prometheus on 9090; ours is optional, so take another port.
                self.prometheus_port = infra.free_port(self.config.host)
            self.children["prometheus"] = await asyncio.to_thread(
                prometheus_server.start,
                self.config.home / "prometheus",
                self.logs,
                self.prometheus_port,
                self.config.host,
                base_dir=self.config.prometheus_dir,
                interval=self.config.prometheus_interval,
            )
            self.prometheus_started = True
        (self.config.home / "stack.json").write_text(
            json.dumps(
                {
                    "gateway": self.gateway_url,
                    "kafka": self.bootstrap,
                    "mongo": self.env()["SITEWRIGHT_MONGO_URL"],
                    "prometheus": self.prometheus_url,
                    "metrics": {label: f"http://{address}/metrics" for label, (_, address) in self.metrics.items()},
                }
            )
        )

    def start_service(self, name: str, instance: str = "") -> infra.Child:
        """Start (or restart) one service process; `instance` names a second copy of it."""
        label = f"{name}{instance}"
        env = self.env()
        if name == "gateway":
            # The gateway serves /metrics on its API port; the workers on a port of their own.
            port = self.gateway_port if not instance else infra.free_port()
            env["SITEWRIGHT_GATEWAY_PORT"] = str(port)
        else:
            port = infra.free_port()
            env["SITEWRIGHT_METRICS_PORT"] = str(port)
        argv = self.config.commands.get(name) or [sys.executable, "-m", f"sitewright_{name}"]
        child = infra.spawn(label, argv, self.logs, env=env, port=port)
        self.children[label] = child
        self.metrics[label] = (name, f"{self.config.host}:{port}")
        self._write_targets()
        return child

    def _write_targets(self) -> None:
        targets: dict[str, list[str]] = {name: [] for name in SERVICES}
        for name, address in self.metrics.values():
            targets[name].append(address)
        prometheus_server.write_targets(self.config.home / "prometheus" / "targets", targets)

    async def restart_broker(self) -> None:
        """Kill the broker and start a new one on the same port; the embedded broker's log starts empty."""
        self.children.pop("broker").kill()
        self.children["broker"] = await asyncio.to_thread(
            infra.start_broker, self.logs, self.broker_port, self.config.host
        )
        await ensure_topics(self.bootstrap, Topics(self.config.topic_prefix).all, self.config.partitions)

    def stop(self) -> None:
        """Services first (they drain and commit), then the database and the broker."""
        order = [n for n in self.children if n not in ("broker", "mongodb")] + ["mongodb", "broker"]
        for name in order:
            if name in self.children:
                self.children.pop(name).stop()

    def failed(self) -> list[str]:
        return [n for n, c in self.children.items() if c.proc.poll() is not None]
