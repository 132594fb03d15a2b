"""The `sitewright` command: submit sites, follow jobs live, read statuses and results.

Exit codes: 0 done (a followed job completed), 1 a followed job failed or was
cancelled, 2 bad input, 3 API key refused, 4 gateway unreachable, 5 gateway error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import quote

from rich.console import Console

from . import render
from .client import EXIT_JOB_NOT_COMPLETED, EXIT_OK, Api, CliError
from .config import CliConfig
from .follow import follow

STATUSES = ("pending", "crawling", "generating", "parsing", "completed", "failed", "cancelled")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sitewright",
        description="Turn websites into SEO content with a Sitewright gateway.",
        epilog="Gateway: SITEWRIGHT_URL (default http://127.0.0.1:8000). "
        "Key: SITEWRIGHT_API_KEY, else .sitewright/api-key. "
        "Exit codes: 0 ok/completed, 1 job failed or cancelled, 2 bad input, 3 key refused, "
        "4 unreachable, 5 gateway error.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit", help="submit one or more sites")
    s.add_argument("urls", nargs="+", metavar="URL")
    s.add_argument("--follow", "-f", action="store_true", help="show live progress; exit 0 only if every job completed")
    s.add_argument("--max-pages", type=int, help="pages to crawl at most")
    s.add_argument("--max-depth", type=int, help="links to follow from the start page")
    s.add_argument("--language", help="content language, e.g. en")
    s.add_argument("--priority", type=int, help="0 (lowest) to 9 (highest)")
    s.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="CHANNEL:TARGET",
        help="e.g. webhook:https://hooks.example/sw or email:me@example.com (repeatable)",
    )
    s.add_argument("--idempotency-key", help="resubmitting with the same key returns the same job")
    f = sub.add_parser("follow", help="follow jobs live until they finish")
    f.add_argument("ids", nargs="+", metavar="ID")
    st = sub.add_parser("status", help="the system's last hour, or one job's status")
    st.add_argument("id", nargs="?", metavar="ID")
    j = sub.add_parser("jobs", help="list your jobs, newest first")
    j.add_argument("--status", choices=STATUSES)
    j.add_argument("--limit", type=int, default=20)
    r = sub.add_parser("result", help="a completed job's content")
    r.add_argument("id", metavar="ID")
    r.add_argument("--json", action="store_true", help="the raw JSON (meta, content, faq, schema)")
    return p


async def submit(api: Api, args: argparse.Namespace, out: Console, err: Console) -> int:
    options = {
        k: v
        for k, v in (("max_pages", args.max_pages), ("max_depth", args.max_depth), ("language", args.language))
        if v is not None
    }
    notify = []
    for item in args.notify:
        channel, sep, target = item.partition(":")
        if not sep or not target:
            raise CliError(f"--notify wants CHANNEL:TARGET (webhook, email or sms), got {item!r}", 2)
        notify.append({"channel": channel, "target": target})
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    jobs: dict[str, str] = {}
    for url in args.urls:
        body: dict = {"url": url, "options": options, "notify": notify}
        if args.priority is not None:
            body["priority"] = args.priority
        accepted = await api.call("POST", "/api/jobs", json=body, headers=headers)
        jobs[accepted["id"]] = url
        out.print(f"{accepted['id']}  {url}", highlight=False, soft_wrap=True)
    if not args.follow:
        return EXIT_OK
    return await follow_jobs(api, jobs, out, err)


async def follow_jobs(api: Api, jobs: dict[str, str], out: Console, err: Console) -> int:
    final = await follow(api, jobs, err)
    for job_id, m in final.items():
        if m["status"] == "completed":
            out.print(f"{job_id}  completed: `sitewright result {job_id}`", highlight=False, soft_wrap=True)
        else:
            why = f": {m['error']['code']}: {m['error']['message']}" if m.get("error") else ""
            out.print(f"{job_id}  {m['status']}{why}", highlight=False, soft_wrap=True)
    return EXIT_OK if all(m["status"] == "completed" for m in final.values()) else EXIT_JOB_NOT_COMPLETED


async def run_command(args: argparse.Namespace, config: CliConfig, out: Console, err: Console) -> int:
    async with Api(config) as api:
        match args.command:
            case "submit":
                return await submit(api, args, out, err)
            case "follow":
                jobs = {i: (await api.call("GET", f"/api/jobs/{quote(i, safe='')}"))["url"] for i in args.ids}
                return await follow_jobs(api, jobs, out, err)
            case "status" if args.id:
                render.job_details(out, await api.call("GET", f"/api/jobs/{quote(args.id, safe='')}"))
            case "status":
                render.system_status(out, await api.call("GET", "/api/status"))
            case "jobs":
                params = {"limit": args.limit} | ({"status": args.status} if args.status else {})
                out.print(render.jobs_table(await api.call("GET", "/api/jobs", params=params)))
            case "result":
                body = await api.call("GET", f"/api/jobs/{quote(args.id, safe='')}/result")
                if args.json:
                    sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
                else:
                    render.result(out, body)
    return EXIT_OK


async def main(argv: list[str], config: CliConfig, out: Console, err: Console) -> int:
    """Run one command; returns the exit code (errors are printed, not raised)."""
    args = parser().parse_args(argv)
    try:
        return await run_command(args, config, out, err)
    except CliError as exc:
        err.print(f"[red]sitewright: {exc.message}[/]", highlight=False, soft_wrap=True)
        return exc.exit_code


def run() -> None:
    try:
        code = asyncio.run(main(sys.argv[1:], CliConfig.from_env(), Console(), Console(stderr=True)))
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)
