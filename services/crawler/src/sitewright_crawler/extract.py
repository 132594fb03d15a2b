"""Turn one HTML page into what the generator needs: metadata, headings, main text, links.

Pure: no I/O, so it is tested with literal HTML strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from sitewright_contracts.models import Heading, PageSummary
from sitewright_crawler.clean import clean_blocks, clean_strings

# Caps on what one page may contribute, so a hostile or bloated page cannot
# blow up the event that carries the crawl.
MAX_TITLE_CHARS = 300
MAX_DESCRIPTION_CHARS = 1_000
MAX_HEADINGS = 60
MAX_HEADING_CHARS = 300
MAX_JSON_LD_BLOCKS = 10
MAX_JSON_LD_CHARS = 50_000
MAX_OPEN_GRAPH = 40
MAX_OPEN_GRAPH_CHARS = 1_000
MAX_LINKS = 2_000

# Site chrome rather than content. Header and footer are handled apart: inside
# an <article> or <main> they hold the article's own title and byline.
_BOILERPLATE = (
    "nav, aside, script, style, noscript, form, template, svg, iframe, object, embed, "
    "button, select, textarea, dialog, [hidden], [aria-hidden='true'], "
    "[role='navigation'], [role='banner'], [role='contentinfo'], [role='complementary'], "
    "[role='search'], [role='dialog']"
)

# Elements that start a new line of text; everything else flows inline.
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "br", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "thead",
    "tfoot", "td", "th", "tr", "ul",
})
# fmt: on

_WS = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?…](?=\s)|\n")


@dataclass(frozen=True)
class Directives:
    """What the page's robots meta tag asks of crawlers."""

    noindex: bool = False
    nofollow: bool = False


def collapse(text: str) -> str:
    """Whitespace runs to single spaces, trimmed."""
    return _WS.sub(" ", text).strip()


def trim_text(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` chars, at a sentence end if one is near, else between words."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    head = text[: limit + 1]
    # A sentence end in the last third keeps whole sentences without wasting much budget.
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if m.end() <= limit]
    if ends and ends[-1] >= limit * 2 // 3:
        return head[: ends[-1]].rstrip()
    space = head.rfind(" ", 0, limit + 1)
    if space > limit // 2:
        return head[:space].rstrip()
    return text[:limit]


def parse_robots_directives(*values: str) -> Directives:
    """Directives from robots meta contents or X-Robots-Tag values, e.g. 'noindex, nofollow'."""
    tokens = {t.strip().lower() for v in values for t in v.split(",")}
    none = "none" in tokens
    return Directives(noindex=none or "noindex" in tokens, nofollow=none or "nofollow" in tokens)


def extract_page(
    url: str,
    html: str,
    *,
    depth: int,
    status: int = 200,
    max_text_chars: int = 4000,
    warnings: list[str] | None = None,
) -> tuple[PageSummary, list[str], Directives]:
    """Parse one page into its summary, its followable links and its robots directives.

    The summary is clean (`clean.py`): whatever the page held, it can be carried and stored. What had to be
    dropped is added to `warnings`."""
    tree = LexborHTMLParser(html)
    base = _base_url(tree, url)
    metas = _metas(tree)

    directives = parse_robots_directives(*metas.get("robots", []))
    open_graph = _open_graph(tree)
    json_ld = clean_blocks(url, _json_ld(tree), warnings if warnings is not None else [])
    links = _links(tree, base)
    canonical = _canonical(tree, base)
    language = _language(tree)
    description = _first(metas.get("description", []), MAX_DESCRIPTION_CHARS)

    title_node = tree.css_first("title")
    title = collapse(title_node.text()) if title_node is not None else ""

    # Everything above reads the whole document; below, the tree is pruned to content.
    content = _content_root(tree)
    headings = _headings(content) if content is not None else []
    if not headings:
        headings = _headings(tree.root) if tree.root is not None else []
    text = trim_text(_block_text(content), max_text_chars) if content is not None else ""

    if not title:
        title = open_graph.get("og:title", "") or next((h.text for h in headings if h.level == 1), "")

    summary = PageSummary(
        url=url,
        status=status,
        depth=depth,
        title=trim_text(title, MAX_TITLE_CHARS),
        description=description,
        canonical=canonical,
        language=language,
        headings=headings,
        text=text,
        json_ld=json_ld,
        open_graph=open_graph,
    )
    return clean_strings(summary), links, directives


def _absolute(base: str, href: str | None) -> str | None:
    """An http(s) URL without fragment, or None for anything else (mailto:, javascript:, junk)."""
    if not href:
        return None
    # Browsers drop surrounding whitespace and any tab or newline inside an href.
    href = re.sub(r"[\t\n\r]", "", href.strip())
    if not href or href.startswith("#"):
        return None
    try:
        absolute, _ = urldefrag(urljoin(base, href))
        parts = urlsplit(absolute)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return absolute


def _base_url(tree: LexborHTMLParser, url: str) -> str:
    node = tree.css_first("base[href]")
    if node is not None:
        return _absolute(url, node.attributes.get("href")) or url
    return url


def _metas(tree: LexborHTMLParser) -> dict[str, list[str]]:
    """Every <meta name=... content=...>, by lower-cased name (names are case-insensitive)."""
    found: dict[str, list[str]] = {}
    for node in tree.css("meta[name][content]"):
        name = (node.attributes.get("name") or "").strip().lower()
        content = node.attributes.get("content")
        if name and content is not None:
            found.setdefault(name, []).append(content)
    return found


def _first(values: list[str], limit: int) -> str:
    for value in values:
        if value := collapse(value):
            return trim_text(value, limit)
    return ""


def _open_graph(tree: LexborHTMLParser) -> dict[str, str]:
    graph: dict[str, str] = {}
    for node in tree.css("meta[content]"):
        # The spec says property=, but name= is common enough in the wild to accept.
        key = (node.attributes.get("property") or node.attributes.get("name") or "").strip().lower()
        value = collapse(node.attributes.get("content") or "")
        # The first of repeated properties (og:image) is the preferred one.
        if key.startswith("og:") and value and key not in graph and len(graph) < MAX_OPEN_GRAPH:
            graph[key] = value[:MAX_OPEN_GRAPH_CHARS]
    return graph


def _json_ld(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for node in tree.css("script[type]"):
        kind = (node.attributes.get("type") or "").split(";")[0].strip().lower()
        if kind != "application/ld+json":
            continue
        raw = node.text().strip()
        if not raw or len(raw) > MAX_JSON_LD_CHARS:
            continue
        # Some CMSs wrap the JSON in an HTML comment or CDATA section.
        raw = re.sub(r"^\s*(<!--|//\s*<!\[CDATA\[)|(-->|//\s*\]\]>)\s*$", "", raw).strip()
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict) and len(blocks) < MAX_JSON_LD_BLOCKS:
                blocks.append(item)
    return blocks


def _rel(node: LexborNode) -> set[str]:
    return {t.lower() for t in (node.attributes.get("rel") or "").split()}


def _links(tree: LexborHTMLParser, base: str) -> list[str]:
    links: dict[str, None] = {}
    for node in tree.css("a[href], area[href]"):
        if "nofollow" in _rel(node):
            continue
        link = _absolute(base, node.attributes.get("href"))
        if link is not None:
            links.setdefault(link)
            if len(links) >= MAX_LINKS:
                break
    return list(links)


def _canonical(tree: LexborHTMLParser, base: str) -> str | None:
    for node in tree.css("link[rel][href]"):
        if "canonical" in _rel(node):
            return _absolute(base, node.attributes.get("href"))
    return None


def _language(tree: LexborHTMLParser) -> str | None:
    html = tree.css_first("html")
    if html is None:
        return None
    lang = (html.attributes.get("lang") or html.attributes.get("xml:lang") or "").strip()
    return lang[:35] or None


def _content_root(tree: LexborHTMLParser) -> LexborNode | None:
    """The element holding the page's own content, stripped of site chrome."""
    for node in tree.css(_BOILERPLATE):
        node.decompose()
    for node in tree.css("header, footer"):
        if not _inside(node, ("article", "main")):
            node.decompose()
    for selector in ("main", "[role='main']"):
        if (main := tree.css_first(selector)) is not None:
            return main
    articles = tree.css("article")
    if len(articles) == 1:
        return articles[0]
    # Several articles (a blog index) or none: the body holds the content.
    return tree.body


def _inside(node: LexborNode, tags: tuple[str, ...]) -> bool:
    parent: LexborNode | None = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def _headings(root: LexborNode) -> list[Heading]:
    headings: list[Heading] = []
    for node in root.css("h1, h2, h3"):
        text = collapse(node.text())
        if text:
            level = int((node.tag or "h0")[1])
            headings.append(Heading(level=level, text=trim_text(text, MAX_HEADING_CHARS)))
            if len(headings) >= MAX_HEADINGS:
                break
    return headings


def _block_text(root: LexborNode) -> str:
    """The visible text, one line per block element, so paragraphs stay apart.

    Walks with an explicit stack: deeply nested markup must not hit the recursion limit.
    """
    lines: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if line := collapse("".join(current)):
            lines.append(line)
        current.clear()

    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            flush()
            continue
        if node.is_text_node:
            current.append(node.text_content or "")
            continue
        if not node.is_element_node:
            continue  # comments
        block = node.tag in _BLOCK_TAGS
        if block:
            flush()
            stack.append((node, True))
        elif node.tag in ("img", "picture", "video", "audio", "canvas"):
            continue
        children = list(node.iter(include_text=True))
        stack.extend((child, False) for child in reversed(children))
    flush()
    return "\n".join(lines)
