"""The `sitewright` command as a user runs it (a separate process) against a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from sitewright_cli.config import CliConfig
from sitewright_cli.main import main
from sitewright_contracts import events as ev
from sitewright_contracts.models import ErrorInfo
from sitewright_devstack.infra import free_port
from sitewright_devstack.synthetic import job_story
from tests.helpers import TEST_API_KEY
from tests.integration.served import served
from tests.integration.test_gateway_api import gateway_settings
from tests.integration.test_streams import publisher

URL = "https://example.com/"


class Cli:
    """`sitewright` with the gateway's address and key in its environment:
    as a process (`start`) or in this one (`run`)."""

    def __init__(self, base: str, cwd: Path, key: str = TEST_API_KEY):
        self.env = {**os.environ, "SITEWRIGHT_URL": base, "SITEWRIGHT_API_KEY": key, "COLUMNS": "200"}
        self.cwd = cwd

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sitewright_cli",
            *args,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str) -> tuple[int, str, str]:
        """In this process (starting Python again per command is slow on a busy machine): code, stdout, stderr."""
        out, err = Console(file=io.StringIO(), width=200), Console(file=io.StringIO(), width=200)
        config = CliConfig(self.env["SITEWRIGHT_URL"], self.env["SITEWRIGHT_API_KEY"], "SITEWRIGHT_API_KEY")
        with contextlib.redirect_stdout(out.file):  # `result --json` writes to stdout directly
            code = await main(list(args), config, out, err)
        return code, out.file.getvalue(), err.file.getvalue()


async def submitted(proc: asyncio.subprocess.Process) -> str:
    """The job id `submit` prints first."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    job_id, url = line.decode().split()
    assert url == URL
    return job_id


async def finish(proc: asyncio.subprocess.Process, timeout: float = 120) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_submit_follow_exits_0_when_the_job_completes_and_the_other_commands_show_it(
    kafka_bootstrap, mongo_url, unique, tmp_path
):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with served(settings) as base, publisher(kafka_bootstrap, settings.topic_prefix) as publish:
        cli = Cli(base, tmp_path)
        proc = await cli.start("submit", URL, "--follow", "--max-pages", "3")
        job_id = await submitted(proc)
        await publish(job_story(job_id, URL))
        code, out, err = await finish(proc)
        assert code == 0, (out, err)
        assert f"{job_id}  completed: `sitewright result {job_id}`" in out
        assert "100%" in err and "completed" in err

        code, out, _ = await cli.run("result", job_id, "--json")
        assert code == 0 and json.loads(out)["meta"]["title"] == "Synthetic site"
        code, out, _ = await cli.run("result", job_id)
        assert code == 0 and "Synthetic site" in out and "Is this real?" in out
        code, out, _ = await cli.run("jobs", "--status", "completed")
        assert code == 0 and job_id in out
        code, out, _ = await cli.run("status", job_id)
        assert code == 0 and "completed" in out and "100%" in out

        code, _, err = await cli.run("follow", job_id)  # already finished: exits at once with its status
        assert code == 0


async def test_follow_exits_1_with_the_reason_when_the_job_fails(kafka_bootstrap, mongo_url, unique, tmp_path):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    async with served(settings) as base, publisher(kafka_bootstrap, settings.topic_prefix) as publish:
        proc = await Cli(base, tmp_path).start("submit", URL, "--follow")
        job_id = await submitted(proc)
        error = ErrorInfo(code="site_unreachable", message="the site did not answer", retryable=False)
        await publish(
            [
                ev.CrawlStarted(job_id=job_id, data=ev.CrawlStartedData(url=URL)),
                ev.JobFailed(job_id=job_id, data=ev.JobFailedData(stage="crawl", error=error)),
            ]
        )
        code, out, err = await finish(proc)
    assert code == 1, (out, err)
    assert f"{job_id}  failed: site_unreachable: the site did not answer" in out


async def test_follow_resumes_when_the_gateway_restarts_mid_job(kafka_bootstrap, mongo_url, unique, tmp_path):
    settings = gateway_settings(kafka_bootstrap, mongo_url, unique)
    port = free_port()
    async with publisher(kafka_bootstrap, settings.topic_prefix) as publish:
        async with served(settings, port) as base:
            proc = await Cli(base, tmp_path).start("submit", URL, "--follow")
            job_id = await submitted(proc)
            story = job_story(job_id, URL)
            await publish(story[:20])
            assert proc.stderr is not None
            while b"crawling" not in await asyncio.wait_for(proc.stderr.readline(), 30):
                pass
        await publish(story[20:40])  # while no gateway runs
        async with served(settings, port):
            await publish(story[40:])
            code, out, err = await finish(proc)
    assert code == 0, (out, err)
    assert "resuming" in err and f"{job_id}  completed" in out


async def test_errors_are_explained_with_distinct_exit_codes(kafka_bootstrap, mongo_url, unique, tmp_path):
    async with served(gateway_settings(kafka_bootstrap, mongo_url, unique)) as base:
        code, _, err = await Cli(base, tmp_path, key="sw_wrong").run("jobs")
        assert code == 3 and "refused the API key (from SITEWRIGHT_API_KEY)" in err
        code, _, err = await Cli(base, tmp_path).run("submit", "ftp://example.com/")
        assert code == 2 and "scheme 'ftp' is not supported" in err
        code, _, err = await Cli(base, tmp_path).run("submit", URL, "--max-pages", "0")
        assert code == 2 and "max_pages" in err
        code, _, err = await Cli(base, tmp_path).run("result", "no-such-job")
        assert code == 2 and "no job with id" in err
    code, _, err = await Cli(f"http://127.0.0.1:{free_port()}", tmp_path).run("jobs")
    assert code == 4 and "connection refused" in err and "make up" in err
