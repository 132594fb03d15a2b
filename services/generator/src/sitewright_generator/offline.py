"""The offline provider: deterministic, extractive SEO copy built from the crawl itself.

It lets the product work with no API key. Everything it writes is taken from the site: the
sentences that best represent what the site talks about (term frequency over the whole site,
stopwords removed), its own headings, its own questions. The few words it adds itself (derived
questions, fallbacks) exist in English, German, French and Spanish; the copy stays in the site's
own language. No output depends on set order or hashing, so the same crawl always gives
byte-identical output.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from sitewright_contracts.models import CrawlContext, Heading, PageSummary

from .output_format import (
    DESCRIPTION_IDEAL,
    DESCRIPTION_MAX,
    FAQS,
    TITLE_IDEAL,
    TITLE_MAX,
    clip,
    pages_by_usefulness,
)
from .provider import CallStats, Part

SCHEMA_CONTEXT = "https://schema.org"
SECTION_TARGET = 6
SECTION_BODY_CHARS = 650
ANSWER_CHARS = 450
# Crawls with at most this much text are built on the event loop: a one-page site takes about a
# millisecond, 4,000 chars of long sentences 3-6 ms on the 2-core bench machine; 16,000 took 20 ms,
# too long to hold the loop. Bigger crawls are built in a thread.
INLINE_TEXT_CHARS = 4_000

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each even ever every few for from further get gets got had
    hadn't has hasn't have haven't having he her here hers herself him himself his how however i
    if in into is isn't it it's its itself just let's like made make makes many may me more most
    much must my myself need needs no nor not now of off often on once one only or other ought
    our ours ourselves out over own per same she should shouldn't so some such than that that's
    the their theirs them themselves then there there's these they this those through to too two
    under until up upon us use used using very via was wasn't we we'll we're we've well were
    weren't what what's when where which while who whom whose why will with within without won't
    would wouldn't yes yet you you'll you're you've your yours yourself yourselves """
    # German, French and Spanish function words: enough to keep them from ranking as topics.
    """aber alle als also am an auch auf aus bei bin bis bist da damit dann das dass dem den der des
    dich die dir doch dort du durch ein eine einem einen einer eines er es etwas euch euer für hat
    hatte haben hier ich ihm ihn ihr ihre im in ist ja jede jeder kann kein keine mich mit muss nach
    nicht noch nur ob oder ohne sehr sein seine sich sie sind so über um und uns unser unsere unter
    vom von vor war wie wir wird wo zu zum zur au aux avec ce ces cette comme dans de des du elle en
    est et eux il ils je la le les leur lui mais même mes moi mon ne nos notre nous ou où par pas
    pour qu que qui sa se ses son sont sur ta te tes toi ton tu un une vos votre vous al como con
    del desde donde el ella ellos en entre era es esta este esto están fue hay la las le les lo los
    más muy nos nuestra nuestro para pero por que se sin sobre su sus también tiene un una uno
    y ya""".split()
)
# Headings that label page furniture rather than content.
_FURNITURE = frozenset(
    "menu|navigation|main navigation|main menu|footer|header|sidebar|search|follow us|share|"
    "share this|newsletter|subscribe|social|quick links|useful links|related posts|recent posts|"
    "categories|tags|archives|skip to content|cart|basket|log in|login|sign in|my account|"
    "breadcrumb|cookies|cookie settings".split("|")
)
# Title parts that name the page's role, not the site: "Home | Crumb & Co", "Accueil - Mie & Co".
_GENERIC_TITLE_PARTS = frozenset(
    "home|homepage|home page|start|start page|index|main page|welcome|official site|"
    "official website|startseite|willkommen|accueil|bienvenue|inicio|portada|bienvenido|"
    "bienvenidos|página principal|pagina iniziale|hem|forside|hjem|etusivu".split("|")
)
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

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
_TITLE_SEPARATOR = re.compile(r"\s+[|\-–—·•»/]\s+|:\s+|\s+::\s+")
# A sentence ends at . ! ? or … followed by space and something that can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-ZÀ-ÖØ-Þ0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st no nr vs etc e.g i.e approx inc ltd co jr sr mt ft ave rd".split()
)
_DAY = re.compile(
    r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?|daily|"
    r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|täglich|"
    r"lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|"
    r"lunes|martes|miércoles|jueves|viernes|sábado|domingo)\b",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b\d{1,2}(?:[:.]\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.|uhr|h)(?!\w)|\b\d{1,2}:\d{2}\b", re.I
)
_OPEN = re.compile(
    r"\b(open|opens|closed|hours|geöffnet|geschlossen|ouvert|fermé|abierto|cerrado)\b", re.I
)
_ADDRESS = re.compile(
    r"\b\d+[a-z]?\s+([A-Z][\w'.-]*\s+){1,3}"
    r"(street|st|road|rd|avenue|ave|lane|ln|way|boulevard|blvd|drive|dr|square|sq|place|pl|"
    r"court|ct|highway|hwy|parkway|terrace)\b|\blocated\b|\bfind us\b",
    re.IGNORECASE,
)
_CONTACT = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.-]+|(\+?\d[\d\s().-]{7,}\d)|\b(call|phone|email|e-mail)\b", re.IGNORECASE
)
_PRICE = re.compile(r"[$€£¥]\s?\d|\b\d+(?:[.,]\d+)?\s?(usd|eur|gbp|dollars|euros|pounds)\b", re.I)


def _mentions_hours(text: str) -> bool:
    # A day alone ("every first Saturday we run a class") is not an opening time.
    return bool(_TIME.search(text) or (_DAY.search(text) and _OPEN.search(text)))


@dataclass(frozen=True)
class _Phrases:
    """The few words the provider writes itself, in the languages it knows."""

    what_is: str
    about: str
    hours: str
    where: str
    contact: str
    price: str
    site_of: str
    site_at: str


_PHRASES = {
    "en": _Phrases(
        what_is="What is {name}?",
        about="About {name}",
        hours="When is {name} open?",
        where="Where is {name} located?",
        contact="How can I contact {name}?",
        price="How much does {name} charge?",
        site_of="The website of {name} at {host}.",
        site_at="The website at {host}.",
    ),
    "de": _Phrases(
        what_is="Was ist {name}?",
        about="Über {name}",
        hours="Wann hat {name} geöffnet?",
        where="Wo befindet sich {name}?",
        contact="Wie kann ich {name} kontaktieren?",
        price="Was kostet es bei {name}?",
        site_of="Die Website von {name} unter {host}.",
        site_at="Die Website unter {host}.",
    ),
    "fr": _Phrases(
        what_is="Qu'est-ce que {name} ?",
        about="À propos de {name}",
        hours="Quels sont les horaires d'ouverture de {name} ?",
        where="Où se trouve {name} ?",
        contact="Comment contacter {name} ?",
        price="Quels sont les tarifs de {name} ?",
        site_of="Le site web de {name} sur {host}.",
        site_at="Le site web {host}.",
    ),
    "es": _Phrases(
        what_is="¿Qué es {name}?",
        about="Acerca de {name}",
        hours="¿Cuál es el horario de {name}?",
        where="¿Dónde se encuentra {name}?",
        contact="¿Cómo puedo contactar con {name}?",
        price="¿Cuáles son los precios de {name}?",
        site_of="El sitio web de {name} en {host}.",
        site_at="El sitio web {host}.",
    ),
}


def _phrases(language: str | None) -> _Phrases:
    prefix = (language or "en").split("-")[0].split("_")[0].lower()
    return _PHRASES.get(prefix, _PHRASES["en"])


@dataclass(frozen=True)
class _Sentence:
    text: str
    page: int
    segment: int
    line: int
    order: int
    stems: tuple[str, ...]
    is_question: bool


@dataclass
class _Segment:
    """A stretch of one page under one heading (or before the first heading)."""

    page: int
    index: int
    heading: Heading | None
    sentences: list[_Sentence] = field(default_factory=list)


@dataclass(frozen=True)
class _Site:
    pages: list[PageSummary]
    segments: list[_Segment]
    scores: dict[tuple[int, int], float]  # (page, order) -> sentence score

    def score(self, sentence: _Sentence) -> float:
        return self.scores[(sentence.page, sentence.order)]

    def heading_of(self, sentence: _Sentence) -> str:
        for segment in self.segments:
            if segment.page == sentence.page and segment.index == sentence.segment:
                return _heading_text(segment.heading)
        return ""


class OfflineProvider:
    """Deterministic extractive provider, the default when no LLM is configured."""

    name = "offline"
    model = "extractive-v1"
    reads_prompt = False

    async def stream(self, part: Part, stats: CallStats | None = None) -> AsyncIterator[str]:
        """Yield the JSON document in chunks: meta, each section, each FAQ pair, then the schema."""
        # A large crawl takes a second or two of CPU: keep the event loop (and the consumer's
        # heartbeats and other jobs) running meanwhile. A small one costs less than the hop to a
        # thread and back is worth (INLINE_TEXT_CHARS), so it runs here.
        if _text_chars(part.crawl) <= INLINE_TEXT_CHARS:
            result = build_result(part.crawl, language=part.language)
        else:
            result = await asyncio.to_thread(build_result, part.crawl, language=part.language)
        for chunk in render_chunks(result):
            yield chunk

    async def aclose(self) -> None:
        pass


def render_chunks(result: dict[str, Any]) -> Iterable[str]:
    """The result as JSON text in pieces that concatenate to one valid document."""

    def dump(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    yield '{"meta": ' + dump(result["meta"]) + ',\n"content": ['
    for i, section in enumerate(result["content"]):
        yield ("," if i else "") + "\n  " + dump(section)
    yield '\n],\n"faq": ['
    for i, item in enumerate(result["faq"]):
        yield ("," if i else "") + "\n  " + dump(item)
    yield '\n],\n"schema": ' + dump(result["schema"]) + "}\n"


def _text_chars(crawl: CrawlContext) -> int:
    return sum(len(page.text) for page in crawl.pages)


def build_result(crawl: CrawlContext, *, language: str | None = None) -> dict[str, Any]:
    """The whole result as a plain dict in the output format, built only from the crawl."""
    site = _analyse(pages_by_usefulness(crawl))
    home = crawl.start_url
    start = site.pages[0] if site.pages else None
    in_language = language or (start.language if start else None)
    words = _phrases(in_language)
    name = _site_name(site.pages, home)
    description = _description(site, name, home, words)
    title = _title(site.pages, name)
    content = _sections(site, name, description, words)
    faq = _faq(site, name, description, words)
    schema = _schema(site.pages, home, name, description, faq, in_language)
    return {
        "meta": {"title": title, "description": description},
        "content": content,
        "faq": faq,
        "schema": schema,
    }


# --- reading the site -------------------------------------------------------------------------


def _analyse(pages: list[PageSummary]) -> _Site:
    # The same page under two URLs (/ and /index.html) would otherwise look like boilerplate.
    unique: dict[str, PageSummary] = {}
    for number, page in enumerate(pages):
        unique.setdefault(_normalise(page.text) or f"\0{number}", page)
    pages = list(unique.values())
    texts = _strip_shared_edges([_normalise(page.text) for page in pages])
    segments: list[_Segment] = []
    raw: list[tuple[_Segment, list[tuple[int, str]]]] = []
    for page_index, (page, text) in enumerate(zip(pages, texts)):
        for segment, lines in _split_segments(page_index, page, text):
            segments.append(segment)
            raw.append((segment, lines))

    # A sentence on many pages is navigation, footer or a slogan: not what any one page says.
    seen_on: Counter[str] = Counter()
    for page_index in range(len(pages)):
        keys = dict.fromkeys(
            _key(sentence)
            for segment, lines in raw
            if segment.page == page_index
            for _, line in lines
            for sentence in _split_sentences(line)
        )
        seen_on.update(list(keys))
    shared = max(2, math.ceil(len(pages) / 2))

    order = Counter[int]()
    for segment, lines in raw:
        for line_no, line in lines:
            for text in _split_sentences(line):
                stems = _stems(text)
                if seen_on[_key(text)] >= shared or not _is_prose(text, stems):
                    continue
                order[segment.page] += 1
                segment.sentences.append(
                    _Sentence(
                        text=_finish(text),
                        page=segment.page,
                        segment=segment.index,
                        line=line_no,
                        order=order[segment.page],
                        stems=tuple(stems),
                        is_question=text.rstrip().endswith("?"),
                    )
                )

    frequency: Counter[str] = Counter()
    for segment in segments:
        for sentence in segment.sentences:
            frequency.update(sentence.stems)
        if segment.heading:
            # Headings name the topics a page is about, so their words count double.
            frequency.update(_stems(segment.heading.text) * 2)
    top = max(frequency.values(), default=1)

    scores: dict[tuple[int, int], float] = {}
    for segment in segments:
        for position, sentence in enumerate(segment.sentences):
            unique = list(dict.fromkeys(sentence.stems))
            weight = sum(frequency[stem] for stem in unique) / top
            # Dividing by the square root favours dense sentences without punishing long ones.
            score = weight / math.sqrt(len(unique)) if unique else 0.0
            # The first sentence under a heading usually states its topic.
            scores[(sentence.page, sentence.order)] = score * (1.15 if position == 0 else 1.0)
    return _Site(pages=pages, segments=segments, scores=scores)


def _normalise(text: str) -> str:
    text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text)
    return re.sub(r" ?\n[\n ]*", "\n", text).strip()


def _strip_shared_edges(texts: list[str]) -> list[str]:
    """Cut the longest run of words that a page starts (or ends) with and another page shares.

    Crawled text often carries the same header and footer on every page; this removes them even
    when they are glued to the real content without a line break.
    """
    tokens = [list(re.finditer(r"\S+", text)) for text in texts]
    words = [[m.group() for m in found] for found in tokens]
    backwards = [list(reversed(w)) for w in words]
    result = []
    for i, text in enumerate(texts):
        if not words[i]:
            result.append(text)
            continue
        others = [j for j in range(len(texts)) if j != i]
        head = max((_common(words[i], words[j]) for j in others), default=0)
        tail = max((_common(backwards[i], backwards[j]) for j in others), default=0)
        if head + tail >= len(words[i]):
            result.append("")
            continue
        start = tokens[i][head - 1].end() if head >= 3 else 0
        end = tokens[i][-tail].start() if tail >= 3 else len(text)
        result.append(text[start:end].strip())
    return result


def _common(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _split_segments(
    page_index: int, page: PageSummary, text: str
) -> list[tuple[_Segment, list[tuple[int, str]]]]:
    """The page's text cut at its headings, each piece as numbered lines."""
    marks: list[tuple[int, int, Heading]] = []
    position = 0
    for heading in page.headings:
        wanted = " ".join(heading.text.split())
        if not wanted:
            continue
        found = text.find(wanted, position)
        if found == -1:
            continue
        marks.append((found, found + len(wanted), heading))
        position = found + len(wanted)

    pieces: list[tuple[Heading | None, str]] = [(None, text[: marks[0][0]] if marks else text)]
    for k, (_, end, heading) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else len(text)
        pieces.append((heading, text[end:stop]))

    result = []
    line_no = 0
    for index, (heading, piece) in enumerate(pieces):
        lines = []
        for line in _unwrap_lines(piece.split("\n")):
            line_no += 1
            lines.append((line_no, line))
        result.append((_Segment(page=page_index, index=index, heading=heading), lines))
    return result


def _unwrap_lines(lines: list[str]) -> list[str]:
    """Join lines that are one sentence wrapped in the page source, keep real breaks."""
    joined: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if joined:
            previous = joined[-1]
            open_ended = not previous.rstrip("\"'”’)").endswith((".", "!", "?", ":", "…"))
            # An unpunctuated line followed by a lowercase word is one sentence split in two
            # (by a line break in the source or an inline element rendered as a block).
            if open_ended and line[0].islower():
                joined[-1] = f"{previous} {line}"
                continue
        joined.append(line)
    return joined


def _split_sentences(line: str) -> list[str]:
    parts = _SENTENCE_END.split(line)
    sentences: list[str] = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        # "St. Mary's" and "e.g. this" are not sentence ends: glue such pieces back on.
        last = sentences[-1].rsplit(" ", 1)[-1].rstrip(".").lower() if sentences else ""
        if sentences and last in _ABBREVIATIONS:
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return sentences


def _key(sentence: str) -> str:
    return " ".join(_WORD.findall(sentence.lower()))


def _is_prose(text: str, stems: list[str]) -> bool:
    """Whether text reads as a sentence worth quoting, not a label, a menu or small print."""
    words = _WORD.findall(text)
    # "Yes." carries the answer to the question before it, though it says nothing on its own.
    if len(words) <= 4 and re.match(r"(yes|no)\b[^?]*[.!]$", text, re.IGNORECASE):
        return True
    if not 4 <= len(words) <= 80 or "©" in text or "all rights reserved" in text.lower():
        return False
    if len(stems) < 2:
        return False
    letters = sum(ch.isalpha() for ch in text)
    if letters < 0.6 * len(text.replace(" ", "")):
        return False
    ends_well = text.rstrip("\"'”’)").endswith((".", "!", "?", "…"))
    # Unpunctuated lines are usually labels or menus unless they are long.
    return ends_well or len(words) >= 10


def _finish(text: str) -> str:
    text = text.strip()
    return text if text.rstrip("\"'”’)").endswith((".", "!", "?", "…")) else text + "."


def _stems(text: str) -> list[str]:
    stems = []
    for word in _WORD.findall(text.lower()):
        if word.endswith(("'s", "’s")):
            word = word[:-2]
        if len(word) <= 2 or word in STOPWORDS or word.isdigit():
            continue
        # A crude plural fold is enough for counting topics: "bikes" and "bike" are one term.
        if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        stems.append(word)
    return stems


# --- names, title and description -------------------------------------------------------------


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


# --- content and FAQ --------------------------------------------------------------------------


def _heading_text(heading: Heading | None) -> str:
    return " ".join(heading.text.split()).strip(" :|-–—") if heading else ""


def _sections(site: _Site, name: str, description: str, words: _Phrases) -> list[dict[str, str]]:
    per_page: dict[int, list[tuple[float, _Segment]]] = {}
    for segment in site.segments:
        heading = _heading_text(segment.heading)
        prose = [s for s in segment.sentences if not s.is_question]
        if (
            not heading
            or not prose
            or heading.endswith("?")
            or heading.lower() in _FURNITURE
            or heading.lower() == name.lower()
        ):
            continue
        top = sorted((site.score(s) for s in prose), reverse=True)[:2]
        per_page.setdefault(segment.page, []).append((sum(top) / len(top), segment))

    # Take the best segment of each page in turn, so the copy covers the whole site.
    ranked = {
        page: sorted(items, key=lambda item: (-item[0], item[1].index))
        for page, items in per_page.items()
    }
    chosen: list[_Segment] = []
    seen_headings: list[str] = []
    depth = 0
    while len(chosen) < SECTION_TARGET and any(depth < len(items) for items in ranked.values()):
        for page in sorted(ranked):
            items = ranked[page]
            if depth < len(items) and len(chosen) < SECTION_TARGET:
                segment = items[depth][1]
                key = _heading_text(segment.heading).lower()
                if key not in seen_headings:
                    seen_headings.append(key)
                    chosen.append(segment)
        depth += 1
    chosen.sort(key=lambda segment: (segment.page, segment.index))

    sections = [
        {
            "heading": clip(_heading_text(segment.heading), 100),
            "body": _body(site, segment.sentences),
        }
        for segment in chosen
    ]

    # Pages without usable headings still have something to say: use the page's own title.
    if len(sections) < SECTION_TARGET // 2:
        covered = {segment.page for segment in chosen}
        for page_index, page in enumerate(site.pages):
            if page_index in covered or len(sections) >= SECTION_TARGET:
                continue
            prose = [s for seg in site.segments if seg.page == page_index for s in seg.sentences]
            heading = _page_heading(page, name, words)
            if prose and heading.lower() not in seen_headings:
                seen_headings.append(heading.lower())
                sections.append({"heading": heading, "body": _body(site, prose)})
    if not sections:
        sections.append({"heading": words.about.format(name=name), "body": description})
    return sections


def _body(site: _Site, sentences: list[_Sentence]) -> str:
    prose = [s for s in sentences if not s.is_question]
    if sum(len(s.text) + 1 for s in prose) <= SECTION_BODY_CHARS:
        chosen = prose
    else:
        chosen = _best(site, prose, SECTION_BODY_CHARS) or prose[:1]
    return clip(_join(chosen), SECTION_BODY_CHARS) if len(chosen) == 1 else _join(chosen)


def _page_heading(page: PageSummary, name: str, words: _Phrases) -> str:
    parts = [
        p for p in _title_parts(page.title) if not _is_generic(p) and p.lower() != name.lower()
    ]
    if parts:
        return clip(" – ".join(parts), 100)
    for heading in page.headings:
        if text := _heading_text(heading):
            return clip(text, 100)
    return words.about.format(name=name)


@dataclass(frozen=True)
class _Intent:
    question: str  # the _Phrases field that asks it
    answers: Callable[[str], object]  # whether a sentence can answer it
    heading_words: tuple[str, ...]


_INTENTS = (
    _Intent("hours", _mentions_hours, ("hours", "open", "öffnungszeit", "horaire", "horario")),
    _Intent(
        "where",
        _ADDRESS.search,
        ("location", "find", "direction", "visit", "address", "anfahrt", "adress", "accès"),
    ),
    _Intent("contact", _CONTACT.search, ("contact", "phone", "mail", "call", "kontakt", "telefon")),
    _Intent("price", _PRICE.search, ("price", "cost", "rate", "fee", "preis", "prix", "tarif")),
)


def _faq(site: _Site, name: str, description: str, words: _Phrases) -> list[dict[str, str]]:
    items: list[tuple[str, list[_Sentence]]] = []
    used: list[tuple[int, int]] = []

    def add(question: str, answer: list[_Sentence], *, fresh: bool = False) -> None:
        # A derived question may only say what no earlier answer said (fresh); a question the
        # site asks keeps its own answer whole, unless that answer was given already.
        if fresh:
            answer = [s for s in answer if (s.page, s.order) not in used]
        keys = [(s.page, s.order) for s in answer]
        known = [item[0].lower() for item in items]
        if not answer or question.lower() in known or all(key in used for key in keys):
            return
        used.extend(keys)
        items.append((question, answer))

    # What is the site? Its own sentence naming itself is the best answer; else the description.
    naming = [s for s in _prose(site) if s.page == 0 and name.lower() in s.text.lower()]
    what_is = words.what_is.format(name=name)

    # Questions the site already asks and answers, as headings or in running text.
    asked: list[tuple[str, list[_Sentence]]] = []
    for segment in site.segments:
        heading = _heading_text(segment.heading)
        prose = [s for s in segment.sentences if not s.is_question]
        if heading.endswith("?") and prose:
            asked.append((heading, _answer(site, prose)))
        sentences = segment.sentences
        for i, sentence in enumerate(sentences):
            if sentence.is_question and len(_WORD.findall(sentence.text)) >= 4:
                following = []
                for after in sentences[i + 1 :]:
                    if after.is_question:
                        break
                    following.append(after)
                if following:
                    asked.append((sentence.text, _answer(site, following)))

    derived: list[tuple[str, list[_Sentence]]] = []
    for intent in _INTENTS:
        matches = [s for s in _prose(site) if intent.answers(s.text)]
        if not matches:
            continue

        # Sentences under a heading on the topic ("Opening hours") answer best; elsewhere, only
        # the single strongest match is trusted.
        on_topic = [
            s for s in matches
            if any(word in site.heading_of(s).lower() for word in intent.heading_words)
        ]
        ranked = sorted(on_topic or matches, key=lambda s: (-site.score(s), s.page, s.order))
        best = ranked[: 2 if on_topic else 1]
        answer = _answer(site, sorted(best, key=lambda s: (s.page, s.order)))
        derived.append((getattr(words, intent.question).format(name=name), answer))

    if naming:
        add(what_is, _answer(site, naming[:2]))
    for question, answer in asked[: FAQS[1] - 2]:
        add(question, answer)
    for question, answer in derived:
        add(question, answer, fresh=True)
    for question, answer in asked:
        add(question, answer)

    faq = [{"question": clip(q, 200), "answer": _join(a)} for q, a in items[: FAQS[1]]]
    if not naming:
        faq.insert(0, {"question": what_is, "answer": description})
        faq = faq[: FAQS[1]]
    return faq


def _answer(site: _Site, sentences: list[_Sentence]) -> list[_Sentence]:
    """An answer of whole sentences in reading order, at most ANSWER_CHARS long."""
    chosen: list[_Sentence] = []
    used = 0
    for sentence in sentences:
        cost = len(sentence.text) + (1 if chosen else 0)
        if chosen and used + cost > ANSWER_CHARS:
            break
        chosen.append(sentence)
        used += cost
    if len(chosen) == 1 and len(chosen[0].text) > ANSWER_CHARS:
        s = chosen[0]
        chosen = [replace(chosen[0], text=clip(chosen[0].text, ANSWER_CHARS))]
    return chosen


# --- JSON-LD ----------------------------------------------------------------------------------


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
