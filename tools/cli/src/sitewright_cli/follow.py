"""Following jobs live: one SSE stream for all of them, a progress bar each, resumed by version when it drops."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from sitewright_cli.sse import server_events

from .client import EXIT_UNREACHABLE, Api, CliError

TERMINAL = ("completed", "failed", "cancelled")
GIVE_UP_AFTER_S = 60.0  # without a working stream for this long, stop trying


class _Dropped(Exception):
    pass


async def follow(api: Api, jobs: dict[str, str], console: Console) -> dict[str, dict]:
    """Follow `jobs` (id -> label) until each reaches a final status; return each one's last message."""
    last: dict[str, dict] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bars = {job_id: progress.add_task(label, total=100, state="waiting") for job_id, label in jobs.items()}
        failures, down_since = 0, None
        while not _all_final(jobs, last):
            params = {"jobs": ",".join(jobs)}
            if last:
                # Resume: the server sends every version after these, then live updates.
                params["since"] = ",".join(f"{j}:{m['version']}" for j, m in last.items())
            try:
                async with api.stream(params) as response:
                    async for event in server_events(response):
                        if event.event == "job" and event.data["job_id"] in bars:
                            failures, down_since = 0, None
                            _show(progress, bars[event.data["job_id"]], last.get(event.data["job_id"]), event.data)
                            last[event.data["job_id"]] = event.data
                            if _all_final(jobs, last):
                                break
                        elif event.event == "error":
                            raise _Dropped(f"{event.data['code']}: {event.data['message']}")
            except (_Dropped, CliError) as exc:
                if isinstance(exc, CliError) and exc.exit_code != EXIT_UNREACHABLE:
                    raise
                failures += 1
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > GIVE_UP_AFTER_S:
                    raise CliError(f"no job stream for {GIVE_UP_AFTER_S:g} s: {exc}", EXIT_UNREACHABLE) from None
                progress.console.print(f"[yellow]stream interrupted ({exc}); resuming[/]")
                await asyncio.sleep(min(0.25 * 2**failures, 5.0))
    return last


def _all_final(jobs: dict[str, str], last: dict[str, dict]) -> bool:
    return all(last.get(j, {}).get("status") in TERMINAL for j in jobs)


def _show(progress: Progress, bar: TaskID, before: dict | None, m: dict) -> None:
    state = f"{m['status']} ({m['stage']}, attempt {m['attempt']})"
    if m.get("error"):
        state += f" [red]{m['error']['code']}: {m['error']['message']}[/]"
    progress.update(bar, completed=m["progress"], state=state)
    if before is None or before["status"] != m["status"]:
        colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(m["status"], "cyan")
        progress.console.print(f"{m['job_id']}  [{colour}]{m['status']}[/]  {m['progress']}%")
