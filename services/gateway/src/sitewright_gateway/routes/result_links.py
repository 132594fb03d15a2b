"""`GET /r/{token}`: the result page a notification links to, readable without an API key.

The token (see `sitewright_runtime.links`) is the only credential: it names
one job of one tenant and expires with the retention period. The page is
plain, accessible HTML (or JSON with `?format=json`), kept out of search
engines, caches and Referer headers, and locked down by a strict CSP since
it shows text that came from a crawled website.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sitewright_runtime.links import LinkError, verify_link

from ..readmodel.store import tenant_job
from ..web.deps import State

router = APIRouter()

_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
}

_STYLE = """
body{font:1rem/1.6 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;background:#fff}
h1{font-size:1.6rem;line-height:1.3}h2{margin-top:2rem;border-bottom:1px solid #ccc}
dt{font-weight:600;margin-top:.75rem}dd{margin:0 0 0 1rem}
pre{background:#f4f4f4;padding:1rem;overflow-x:auto;font-size:.9rem}
.status{display:inline-block;padding:.1rem .5rem;border:1px solid currentColor;border-radius:.25rem}
.muted{color:#555}
"""


def _page(title: str, body: str, status_code: int = 200, description: str = "") -> HTMLResponse:
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f'<meta name="description" content="{escape(description)}">'
        f"<title>{escape(title)} · Sitewright</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def _refusal(fmt: str, status_code: int, title: str, message: str) -> Response:
    if fmt == "json":
        return JSONResponse({"detail": message}, status_code=status_code, headers=_HEADERS)
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", status_code)


@router.get("/r/{token}", tags=["results"], summary="A job's result through a signed, expiring link")
async def result_link(
    token: str,
    state: State,
    format: Annotated[Literal["html", "json"], Query(description="`json` for the raw result.")] = "html",
) -> Response:
    """The job's status and, once completed, its meta tags, content, FAQ and JSON-LD.

    410 when the link has expired, 403 when it was altered or not issued here.
    """
    try:
        claims = verify_link(state.settings.link_secret.get_secret_value(), token)
    except LinkError as exc:
        if exc.expired:
            return _refusal(format, 410, "This link has expired", exc.message)
        return _refusal(format, 403, "This link is not valid", exc.message)
    job = await tenant_job(state.store.jobs, claims.job_id, claims.tenant)
    if job is None:
        return _refusal(
            format,
            410,
            "This result is no longer kept",
            "the job this link points to has been removed after the retention period",
        )
    result = None
    if job["status"] == "completed":
        hidden = {"_id": 0, "tenant": 0, "event_id": 0, "created_at": 0}
        result = await state.store.results.find_one({"_id": claims.job_id}, hidden)
    expires = datetime.fromtimestamp(claims.expires_at, UTC)
    if format == "json":
        body = {
            "job": {
                "id": job["_id"],
                "status": job["status"],
                "url": job.get("url"),
                "error": job.get("error"),
                "finished_at": job.get("finished_at"),
            },
            "result": result,
            "link_expires_at": expires,
        }
        return JSONResponse(json.loads(json.dumps(body, default=str)), headers=_HEADERS)
    title, page_body = _render(job, result, expires)
    return _page(title, page_body, description=((result or {}).get("meta") or {}).get("description", ""))


def _render(job: dict[str, Any], result: dict[str, Any] | None, expires: datetime) -> tuple[str, str]:
    """(title, body HTML) of the result page; every value from the job is escaped."""
    site = escape(job.get("url") or "")
    parts = [
        f'<p class="muted">Sitewright result for <a href="{site}" rel="noopener noreferrer nofollow">{site}</a></p>'
    ]
    if result is None:
        title = f"Job {job['status']}"
        parts.append(f'<h1>{escape(title)}</h1><p>Status: <span class="status">{escape(job["status"])}</span></p>')
        if error := job.get("error"):
            message, code = escape(str(error.get("message", ""))), escape(str(error.get("code", "")))
            parts.append(f"<p>Reason: {message} ({code})</p>")
        if job["status"] == "completed":
            parts.append("<p>The result is no longer available.</p>")
    else:
        meta = result.get("meta", {})
        title = meta.get("title") or "SEO result"
        parts.append(f"<h1>{escape(title)}</h1>")
        parts.append(
            '<section aria-labelledby="meta"><h2 id="meta">Meta tags</h2><dl>'
            f"<dt>Title</dt><dd>{escape(meta.get('title', ''))}</dd>"
            f"<dt>Description</dt><dd>{escape(meta.get('description', ''))}</dd></dl></section>"
        )
        sections = "".join(
            f"<article><h3>{escape(s.get('heading', ''))}</h3>"
            + "".join(f"<p>{escape(p)}</p>" for p in str(s.get("body", "")).split("\n") if p.strip())
            + "</article>"
            for s in result.get("content", [])
        )
        parts.append(f'<section aria-labelledby="content"><h2 id="content">Page content</h2>{sections}</section>')
        if result.get("faq"):
            faq = "".join(
                f"<dt>{escape(q.get('question', ''))}</dt><dd>{escape(q.get('answer', ''))}</dd>" for q in result["faq"]
            )
            parts.append(f'<section aria-labelledby="faq"><h2 id="faq">FAQ</h2><dl>{faq}</dl></section>')
        schema = json.dumps(result.get("schema", {}), indent=2, ensure_ascii=False)
        parts.append(
            '<section aria-labelledby="schema"><h2 id="schema">Structured data (JSON-LD)</h2>'
            f"<pre><code>{escape(schema)}</code></pre></section>"
        )
    parts.append(
        f'<p class="muted">This link works until <time datetime="{expires.isoformat()}">'
        f"{expires:%Y-%m-%d %H:%M} UTC</time>. Add <code>?format=json</code> for the raw result.</p>"
    )
    return title, "".join(parts)
