"""How the CLI shows jobs, results and the system status in a terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

_COLOURS = {"completed": "green", "failed": "red", "cancelled": "yellow", "pending": "dim"}


def status_text(status: str) -> str:
    return f"[{_COLOURS.get(status, 'cyan')}]{status}[/]"


def jobs_table(page: dict[str, Any]) -> Table:
    table = Table("id", "status", "progress", "url", "updated", box=None, header_style="bold")
    for job in page["items"]:
        table.add_row(
            job["id"],
            status_text(job["status"]),
            f"{job['progress']}%",
            job["url"],
            job["updated_at"][:19].replace("T", " "),
        )
    return table


def job_details(console: Console, job: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for field in (
        "id",
        "url",
        "status",
        "stage",
        "progress",
        "attempt",
        "created_at",
        "updated_at",
        "finished_at",
        "version",
    ):
        value = job.get(field)
        if value is not None:
            table.add_row(
                field, status_text(value) if field == "status" else str(value) + ("%" if field == "progress" else "")
            )
    if job.get("error"):
        table.add_row("error", f"[red]{job['error']['code']}[/]: {job['error']['message']}")
    if job.get("next_attempt_at"):
        table.add_row("next attempt", job["next_attempt_at"])
    console.print(table)
    for line in job.get("log", [])[-5:]:
        console.print(f"  [dim]{line}[/]")


def result(console: Console, body: dict[str, Any]) -> None:
    console.print(f"[bold]{body['meta']['title']}[/]")
    console.print(body["meta"]["description"])
    for section in body.get("content", []):
        console.print(f"\n[bold]{section.get('heading', '')}[/]\n{section.get('body', '')}")
    if body.get("faq"):
        console.print("\n[bold]FAQ[/]")
        for item in body["faq"]:
            console.print(f"  Q: {item['question']}\n  A: {item['answer']}")
    console.print(f"\n[dim]schema.org: {body.get('schema', {}).get('@type', '?')} (use --json for the full JSON-LD)[/]")


def system_status(console: Console, body: dict[str, Any]) -> None:
    """GET /api/status: scalar figures as a table, then checks and recommendations."""
    table = Table(show_header=False, box=None)
    for key, value in body.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            table.add_row(key, str(value))
        elif isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            table.add_row(key, ", ".join(f"{k} {v}" for k, v in value.items()) or "-")
    console.print(table)
    for check in (body.get("config") or {}).get("checks", []):
        mark = "[green]ok[/]" if check.get("ok") else "[red]FAIL[/]"
        console.print(f"  {mark}  {check.get('name')}: {check.get('detail', '')}")
    for advice in body.get("recommendations", []):
        if isinstance(advice, dict):
            level = advice.get("level") or advice.get("severity") or ""
            text = next((v for k, v in advice.items() if k not in ("level", "severity") and isinstance(v, str)), "")
            console.print(f"  [bold]{level}[/] {text}")
        else:
            console.print(f"  {advice}")
