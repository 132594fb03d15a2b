"""`sitewright-stack up` runs everything in the foreground; `sitewright-stack demo` runs one job end to end."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .sample_site import StaticSite
from .stack import Stack, StackConfig

console = Console(stderr=True)


async def up(config: StackConfig) -> int:
    stack = Stack(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    console.print(f"Starting Sitewright (data and logs in {config.home.resolve()}) …")
    try:
        await stack.start()
        console.print(f"[bold green]Sitewright is up[/]: API and docs at {stack.gateway_url}/docs")
        console.print(f"  admin API key: {stack.api_key}   (saved in {config.home / 'api-key'})")
        console.print(f"  broker {stack.bootstrap}   mongodb {stack.env()['SITEWRIGHT_MONGO_URL']}")
        if stack.prometheus_url:
            console.print(f"  Prometheus {stack.prometheus_url} (alerts: {stack.prometheus_url}/alerts)")
        else:
            console.print("  Prometheus not started: install it (apt-get install prometheus) to get metrics and alerts")
        console.print(f"  logs: {stack.logs}/<service>.log    Ctrl-C stops everything.")
        while not stop.is_set():
            if failed := stack.failed():
                console.print(f"[red]{', '.join(failed)} exited; see {stack.logs}. Stopping.[/]")
                return 1
            try:
                await asyncio.wait_for(stop.wait(), 1)
            except TimeoutError:
                pass
        return 0
    finally:
        console.print("Stopping …")
        await asyncio.to_thread(stack.stop)
        console.print("Stopped.")


async def demo(config: StackConfig, timeout_s: float) -> int:
    stack = Stack(config)
    started = time.monotonic()
    console.print(f"Starting the embedded stack (logs in {stack.logs}) …")
    try:
        await stack.start()
        console.print(f"Stack up in {time.monotonic() - started:.1f}s; gateway at {stack.gateway_url}")
        with StaticSite() as site:
            return await follow_job(stack.gateway_url, stack.headers, site.url, timeout_s, stack.failed)
    finally:
        await asyncio.to_thread(stack.stop)


async def follow_job(
    gateway: str, headers: dict[str, str], url: str, timeout_s: float, failed: Callable[[], list[str]] = list
) -> int:
    """Submit `url`, show its progress as a bar, print where the result is; 0 when it completed."""
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=10) as api:
        created = await api.post("/api/jobs", json={"url": url, "options": {"max_pages": 10}})
        if created.status_code != 202:
            console.print(f"[red]submission refused: {created.status_code} {created.text}[/]")
            return 1
        job_id = created.json()["id"]
        submitted = time.monotonic()
        console.print(f"Submitted {url} as job {job_id}")
        columns = [
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("pending", total=100)
            job: dict = {}
            while time.monotonic() - submitted < timeout_s:
                job = (await api.get(f"/api/jobs/{job_id}")).json()
                bar.update(task, completed=job["progress"], description=job["status"])
                if job["status"] in ("completed", "failed", "cancelled"):
                    break
                if dead := failed():
                    console.print(f"[red]{', '.join(dead)} exited; see its log under the stack's logs folder[/]")
                    return 1
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - submitted
        if job.get("status") != "completed":
            console.print(f"[red]job ended as {job.get('status')!r} after {elapsed:.1f}s: {job.get('error')}[/]")
            return 1
        result = (await api.get(f"/api/jobs/{job_id}/result")).json()
        console.print(
            f"[bold green]Completed[/] in {elapsed:.2f}s from POST to completed ({job.get('pages_crawled')} pages)."
        )
        console.print(f"  title:       {result['meta']['title']}")
        console.print(f"  description: {result['meta']['description']}")
        console.print(
            f"  {len(result['content'])} content sections, {len(result['faq'])} FAQ pairs, "
            f"JSON-LD @type {result['schema'].get('@type') or '@graph'}"
        )
        console.print(f"Result: {gateway}/api/jobs/{job_id}/result   (status: {gateway}/api/jobs/{job_id})")
        return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sitewright-stack", description=__doc__)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SITEWRIGHT_HOME", ".sitewright")))
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start everything in the foreground (Ctrl-C stops it)")
    p_up.add_argument("--port", type=int, default=int(os.environ.get("SITEWRIGHT_GATEWAY_PORT", "8000")))
    p_up.add_argument("--broker-port", type=int, default=int(os.environ.get("SITEWRIGHT_BROKER_PORT", "19092")))
    p_up.add_argument("--mongo-port", type=int, default=int(os.environ.get("SITEWRIGHT_MONGO_PORT", "27018")))
    p_up.add_argument("--prometheus-port", type=int, default=int(os.environ.get("SITEWRIGHT_PROMETHEUS_PORT", "9090")))
    p_demo = sub.add_parser("demo", help="start the stack, run one job on the bundled sample site, stop")
    p_demo.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    if args.command == "up":
        config = StackConfig(
            home=args.home,
            gateway_port=args.port,
            broker_port=args.broker_port,
            mongo_port=args.mongo_port,
            prometheus_port=args.prometheus_port,
        )
        sys.exit(asyncio.run(up(config)))
    # The demo uses free ports and its own data, so it runs beside a stack that is already up.
    sys.exit(asyncio.run(demo(StackConfig(home=args.home / "demo", gateway_port=0), args.timeout)))
