"""The JSON-LD graph: the site's own main node when it has one, plus WebSite and FAQPage."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sitewright_contracts.models import PageSummary

SCHEMA_CONTEXT = "https://schema.org"
# Types that describe a page or a piece of one, not the site or business behind it.
_PAGE_TYPES = frozenset(
    """WebPage AboutPage ContactPage CollectionPage FAQPage ItemPage SearchResultsPage QAPage
    BreadcrumbList ItemList ListItem SiteNavigationElement WPHeader WPFooter WPSideBar ImageObject
    VideoObject SearchAction ReadAction Question Answer""".split()
)
# Types whose name is a thing on the site, not the site's own name.
_CONTENT_TYPES = frozenset(
    """Article BlogPosting NewsArticle TechArticle Product Offer AggregateOffer Event Recipe Review
    AggregateRating Course JobPosting HowTo Book Movie MusicRecording SoftwareApplication""".split()
)


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type")
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, str)}


def _nodes(json_ld: list[dict[str, Any]]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for block in json_ld:
        if not isinstance(block, dict):
            continue
        graph = block.get("@graph")
        if isinstance(graph, list):
            nodes.extend(node for node in graph if isinstance(node, dict))
        else:
            nodes.append(block)
    return nodes


def _main_node(pages: list[PageSummary]) -> dict[str, Any] | None:
    """The site's own description of itself: the first typed node that is not about a page."""
    for page in pages[:1] or pages:
        for node in _nodes(page.json_ld):
            types = _types(node)
            if types and not types <= _PAGE_TYPES:
                return node
    for page in pages[1:]:
        for node in _nodes(page.json_ld):
            types = _types(node)
            if types and not types <= _PAGE_TYPES and not types & _CONTENT_TYPES:
                return node
    return None


def _schema(
    pages: list[PageSummary],
    home: str,
    name: str,
    description: str,
    faq: list[dict[str, str]],
    language: str | None,
) -> dict[str, Any]:
    parts = urlsplit(home)
    if parts.scheme and parts.netloc:
        origin = f"{parts.scheme}://{parts.netloc}"
    else:
        origin = home.rstrip("/")

    existing = _main_node(pages)
    if existing is not None:
        node = {k: v for k, v in existing.items() if k != "@context"}
        node.setdefault("name", name)
        node.setdefault("url", home)
        node.setdefault("description", description)
    else:
        node = {"@type": "Organization", "name": name, "url": home, "description": description}
    is_site = "WebSite" in _types(node)
    is_publisher = not is_site and not _types(node) & _CONTENT_TYPES
    anchor = "website" if is_site else "organization" if is_publisher else "main"
    node.setdefault("@id", f"{origin}/#{anchor}")
    # @type first reads better and matches how sites write JSON-LD by hand.
    node = {"@type": node["@type"], **{k: v for k, v in node.items() if k != "@type"}}

    graph: list[dict[str, Any]] = []
    if not is_site:
        website: dict[str, Any] = {
            "@type": "WebSite",
            "@id": f"{origin}/#website",
            "name": name,
            "url": home,
            "description": description,
        }
        if language:
            website["inLanguage"] = language
        if is_publisher:
            website["publisher"] = {"@id": node["@id"]}
        graph.append(website)
    graph.append(node)
    if faq:
        graph.append(
            {
                "@type": "FAQPage",
                "@id": f"{origin}/#faq",
                "mainEntity": [
                    {
                        "@type": "Question",
                        "name": item["question"],
                        "acceptedAnswer": {"@type": "Answer", "text": item["answer"]},
                    }
                    for item in faq
                ],
            }
        )
    return {"@context": SCHEMA_CONTEXT, "@graph": graph}
