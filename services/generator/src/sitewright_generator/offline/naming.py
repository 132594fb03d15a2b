"""The site's name, the meta title and description, and the sentence picking they share with the content."""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import urlsplit

from sitewright_contracts.models import PageSummary

from ..output_format import DESCRIPTION_IDEAL, DESCRIPTION_MAX, TITLE_IDEAL, TITLE_MAX, clip
from .jsonld import _CONTENT_TYPES, _main_node, _types
from .model import _Phrases, _Sentence, _Site

# Title parts that name the page's role, not the site: "Home | Crumb & Co", "Accueil - Mie & Co".
_GENERIC_TITLE_PARTS = frozenset(
    "home|homepage|home page|start|start page|index|main page|welcome|official site|"
    "official website|startseite|willkommen|accueil|bienvenue|inicio|portada|bienvenido|"
    "bienvenidos|página principal|pagina iniziale|hem|forside|hjem|etusivu".split("|")
)
_TITLE_SEPARATOR = re.compile(r"\s+[|\-–—·•»/]\s+|:\s+|\s+::\s+")


def _host(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.") or clip(url, 60) or "this website"


def _title_parts(title: str) -> list[str]:
    parts = _TITLE_SEPARATOR.split(" ".join(title.split()))
    return [part.strip() for part in parts if part.strip()]


def _is_generic(part: str) -> bool:
    return part.lower().strip(" .!") in _GENERIC_TITLE_PARTS


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    name = re.sub(r"^(welcome to|welcome at)\s+", "", name, flags=re.IGNORECASE).strip(" .!|-–—:")
    return clip(name, 60)


def _site_name(pages: list[PageSummary], home: str) -> str:
    node = _main_node(pages)
    if node and isinstance(node.get("name"), str) and not (_types(node) & _CONTENT_TYPES):
        if name := _clean_name(node["name"]):
            return name
    for page in pages:
        if name := _clean_name(page.open_graph.get("og:site_name", "")):
            return name

    # The part of the title that most pages share is the site's name: "Menu | Crumb & Co".
    counts: Counter[str] = Counter()
    for page in pages:
        parts = [p for p in _title_parts(page.title) if not _is_generic(p)]
        counts.update(list(dict.fromkeys(parts)))
    shared = [part for part, n in counts.most_common() if n >= 2]
    if shared and len(pages) > 1:
        return _clean_name(shared[0])

    start = pages[0] if pages else None
    if start:
        parts = [p for p in _title_parts(start.title) if not _is_generic(p)]
        if parts:
            # Of "Crumb & Co - Fresh bread baked daily", the brand is usually the shortest part.
            return _clean_name(min(parts, key=len))
        for heading in start.headings:
            if heading.level == 1 and (name := _clean_name(heading.text)):
                return name
    return _host(home)


def _taglines(pages: list[PageSummary], name: str) -> list[str]:
    """Short phrases that say what the site offers, best first, for the meta title."""
    if not pages:
        return []
    start = pages[0]
    sources = [start.title, start.open_graph.get("og:title", "")]
    sources += [h.text for h in start.headings if h.level == 1]
    found: list[str] = []
    for source in sources:
        for part in _title_parts(source):
            if _is_generic(part) or name.lower() in part.lower() or part.lower() in name.lower():
                continue
            # A long heading often has a short clause that works as a tagline on its own.
            for variant in (part, re.split(r",|;| - | – | — ", part)[0]):
                variant = variant.strip(" .!")
                if variant and variant not in found:
                    found.append(variant[0].upper() + variant[1:])
    return found


def _title(pages: list[PageSummary], name: str) -> str:
    candidates = [f"{name} | {tagline}" for tagline in _taglines(pages, name)]
    for limit in (TITLE_IDEAL, TITLE_MAX):
        for candidate in candidates:
            if len(candidate) <= limit:
                return candidate
    return clip(name, TITLE_MAX)


def _description(site: _Site, name: str, home: str, words: _Phrases) -> str:
    start = site.pages[0] if site.pages else None
    if start:
        for given in (start.description, start.open_graph.get("og:description", "")):
            given = " ".join(given.split())
            if len(given) >= 50:
                return given if len(given) <= DESCRIPTION_MAX else clip(given, DESCRIPTION_IDEAL[1])

    for page in (0, None):
        pool = [s for s in _prose(site) if page is None or s.page == page]
        chosen = _best(site, pool, DESCRIPTION_IDEAL[1])
        if chosen:
            text = " ".join(s.text for s in chosen)
            return text if len(text) <= DESCRIPTION_MAX else clip(text, DESCRIPTION_IDEAL[1])

    headings = [h.text for h in start.headings if h.text.strip()] if start else []
    if headings:
        return clip(f"{name}: " + ", ".join(dict.fromkeys(headings)) + ".", DESCRIPTION_IDEAL[1])
    host = _host(home)
    fallback = words.site_of if name != host else words.site_at
    fallback = fallback.format(name=name, host=host)
    return clip(fallback, DESCRIPTION_MAX)


def _prose(site: _Site) -> list[_Sentence]:
    return [s for segment in site.segments for s in segment.sentences if not s.is_question]


def _best(site: _Site, pool: list[_Sentence], budget: int) -> list[_Sentence]:
    """The highest-scoring sentences that fit in `budget` characters, back in reading order.

    When not even the best one fits, it is returned alone for the caller to clip.
    """
    # Sentences with no topic words ("Yes.") only make sense beside their question.
    ranked = sorted((s for s in pool if s.stems), key=lambda s: (-site.score(s), s.page, s.order))
    chosen: list[_Sentence] = []
    used = 0
    for sentence in ranked:
        cost = len(sentence.text) + (1 if chosen else 0)
        if used + cost <= budget:
            chosen.append(sentence)
            used += cost
    if not chosen and ranked:
        chosen = ranked[:1]
    return sorted(chosen, key=lambda s: (s.page, s.order))


def _join(sentences: list[_Sentence]) -> str:
    """Sentences as text, keeping the site's paragraph breaks."""
    text = ""
    previous: _Sentence | None = None
    for sentence in sentences:
        if previous is not None:
            same = previous.page == sentence.page and previous.line == sentence.line
            text += " " if same else "\n\n"
        text += sentence.text
        previous = sentence
    return text
