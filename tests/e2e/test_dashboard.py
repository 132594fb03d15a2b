"""The web dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), against the
whole stack as processes: sign in, submit the sample site through the form, watch its progress bar reach 100 %
over the WebSocket without reloading, open the job and read its result, see the status page; on a desktop and
a phone-sized screen. Screenshots go to test-artifacts/dashboard/ (ignored by git); the path is printed.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from sitewright_devstack.sample_site import StaticSite
from sitewright_devstack.stack import Stack, StackConfig
from tests.e2e.test_pipeline import wait_ready

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("SITEWRIGHT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
WAIT_MS = 60_000
# Bounded, but generous: with many agents on two cores one API round trip has taken several seconds.
STEP_MS = 30_000
expect.set_options(timeout=STEP_MS)

# Every input has a label; returns the ones that do not.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && !e.closest('[hidden]') && !(e.labels && e.labels.length)
               && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML)"""

# WCAG contrast of every visible text against its nearest opaque background; returns the failures.
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || el.closest('[hidden], .offscreen, svg')) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || Number(style.opacity) < 1) continue;
    const [a, b] = [lum(rgb(style.color).slice(0, 3)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 ||
      (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const text = el.textContent.trim().slice(0, 30);
      bad.push(`${el.tagName.toLowerCase()}.${el.className}: ${ratio.toFixed(2)} "${text}"`);
    }
  }
  return bad;
}"""

# Records every value each job row's progress bar shows, as the page changes it.
WATCH_BARS = """() => {
  window.__bars = {};
  const record = () => {
    for (const bar of document.querySelectorAll('tr[data-job] [role=progressbar]')) {
      const id = bar.closest('tr').dataset.job, seen = (window.__bars[id] ||= []),
        v = Number(bar.getAttribute('aria-valuenow'));
      if (seen[seen.length - 1] !== v) seen.push(v);
    }
  };
  new MutationObserver(record).observe(
    document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] }
  );
  window.__loadedOnce = true;
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(StackConfig(home=tmp_path_factory.mktemp("dash"), gateway_port=0, partitions=2))
    try:
        asyncio.run(stack.start())
        yield stack
    finally:
        stack.stop()  # also when the start failed half way: no process outlives the test


@pytest.fixture(scope="module")
def site() -> Iterator[StaticSite]:
    with StaticSite() as s:
        yield s


def watch_problems(page: Page) -> list[str]:
    """Script errors, CSP violations and failed requests, except the refusals the test provokes on purpose."""
    problems: list[str] = []
    expected = ("/cancel", "/retry")

    def console(message) -> None:
        # A failed fetch is logged as an error too; those are judged by their responses below.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 and not r.url.endswith(expected) else None,
    )
    return problems


async def sign_in(page: Page, stack: Stack) -> None:
    await page.goto(stack.gateway_url + "/")
    key = page.get_by_label("API key", exact=True)
    await expect(page.get_by_text("sessionStorage only")).to_be_visible()
    await key.fill(stack.api_key)
    await key.press("Enter")  # the keyboard submits the form
    await expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    await expect(page.locator("#live")).to_have_text("Live updates: on", timeout=WAIT_MS)


async def check_page(page: Page, name: str, problems: list[str]) -> None:
    """Accessibility basics and no script or CSP errors; then a screenshot of the whole page."""
    assert await page.evaluate(UNLABELLED) == [], f"{name}: inputs without a label"
    assert await page.evaluate(LOW_CONTRAST) == [], f"{name}: text below WCAG AA contrast"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (
        f"{name}: scrolls sideways"
    )
    assert problems == [], f"{name}: console errors {problems}"
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


# About 30 s of stack start and 45 s of browser on a quiet machine; the bound leaves room for a crowded one.
@pytest.mark.timeout(540)
async def test_dashboard_submits_a_job_watches_it_live_and_shows_its_result(stack: Stack, site: StaticSite):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.headers, timeout=10) as api:
        await wait_ready(api)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM)
            try:
                job_id = await desktop(browser, stack, site, api)
                await phone(browser, stack, job_id)
            finally:
                await browser.close()


async def desktop(browser: Browser, stack: Stack, site: StaticSite, api: httpx.AsyncClient) -> str:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(STEP_MS)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.gateway_url)
    page = await context.new_page()
    problems = watch_problems(page)
    sockets, frames = [], []
    page.on(
        "websocket", lambda ws: (sockets.append(ws.url), ws.on("framereceived", lambda payload: frames.append(payload)))
    )
    try:
        await sign_in(page, stack)
        await check_page(page, "sign-in-done", problems)

        # Submit through the form and watch the row's bar, without reloading.
        await page.evaluate(WATCH_BARS)
        await page.get_by_label("Website URL").fill(site.url)
        await page.get_by_text("Options", exact=True).click()
        await page.get_by_label("Pages to crawl at most").fill("5")
        await page.get_by_role("button", name="Submit").click()
        accepted = page.get_by_text("Job accepted (")
        await expect(accepted).to_be_visible()
        job_id = (await accepted.inner_text()).split("(")[1].split(")")[0]
        bar = page.locator(f"tr[data-job='{job_id}']").get_by_role("progressbar")
        await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=WAIT_MS)
        await expect(page.locator(f"tr[data-job='{job_id}'] .badge")).to_have_text("completed")
        seen = (await page.evaluate("window.__bars"))[job_id]
        assert seen[0] < 100 and seen[-1] == 100 and seen == sorted(seen), seen
        assert await page.evaluate("window.__loadedOnce === true"), "the page reloaded"
        updates = [json.loads(f) for f in frames if isinstance(f, str) and '"job"' in f]
        assert any(u.get("job_id") == job_id and u.get("progress") == 100 for u in updates), (
            "no update came over the WebSocket"
        )
        assert len(sockets) == 1 and sockets[0].endswith("/api/jobs/stream"), sockets
        await check_page(page, "jobs", problems)

        # Its page: timeline, result readable and copyable, retry/cancel answer with the API's own words.
        await page.locator(f"tr[data-job='{job_id}'] a").click()
        await expect(page.get_by_role("heading", name=f"Job {job_id}")).to_be_visible()
        await expect(page.locator(".timeline")).to_contain_text("job.completed")
        result = (await api.get(f"/api/jobs/{job_id}/result")).json()
        await expect(page.locator(".meta-title")).to_contain_text(result["meta"]["title"])
        assert "Chainline" in result["meta"]["title"]
        await expect(page.locator(".faq dt")).to_have_count(len(result["faq"]))
        await expect(page.locator(".content-section h4").first).to_have_text(result["content"][0]["heading"])
        assert json.loads(await page.locator("code.json-ld").inner_text()) == result["schema"]
        await page.get_by_role("button", name="Copy JSON-LD").click()
        await expect(page.get_by_text("Copied the JSON-LD.")).to_be_visible()
        assert json.loads(await page.evaluate("navigator.clipboard.readText()")) == result["schema"]

        await page.get_by_role("button", name="Cancel").click()
        message = page.locator(".action-message")
        await expect(message).not_to_be_empty()
        answer = await api.post(f"/api/jobs/{job_id}/cancel")  # the same request: the page must show its answer
        if answer.is_success:
            await expect(message).to_have_text("Cancel requested.")
        else:
            body = answer.json()
            said = body.get("message") or body.get("detail")
            await expect(message).to_have_text(f"Could not cancel this job: {said}")
        await page.locator("details summary", has_text="debug JSON").click()
        await check_page(page, "job", problems)

        # The status page: figures, chart, checks.
        await page.get_by_role("link", name="Status").click()
        await expect(page.get_by_role("heading", name="Status: the last hour")).to_be_visible()
        status = (await api.get("/api/status")).json()
        completed = page.locator(".figure", has_text="Completed").locator("dd").first
        await expect(completed).to_have_text(str(status["totals"]["completed"]))
        chart = page.get_by_role("img", name="Jobs finished per minute, last hour")
        await expect(chart).to_be_visible()
        assert await chart.locator("rect.bar-done").count() >= 1
        await expect(page.locator(".checks")).to_contain_text("OK – broker")
        await check_page(page, "status", problems)
        return job_id
    except BaseException:
        await page.screenshot(path=str(ARTIFACTS / "failure-desktop.png"), full_page=True)
        raise
    finally:
        await context.close()


async def phone(browser: Browser, stack: Stack, job_id: str) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(STEP_MS)
    page = await context.new_page()
    problems = watch_problems(page)
    try:
        await sign_in(page, stack)  # sessionStorage is per tab: a new tab asks again
        row = page.locator(f"tr[data-job='{job_id}']")
        await expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        await check_page(page, "phone-jobs", problems)
        await row.get_by_role("link").focus()
        await page.keyboard.press("Enter")
        await expect(page.locator(".meta-title")).not_to_be_empty()
        await check_page(page, "phone-job", problems)
    except BaseException:
        await page.screenshot(path=str(ARTIFACTS / "failure-phone.png"), full_page=True)
        raise
    finally:
        await context.close()
