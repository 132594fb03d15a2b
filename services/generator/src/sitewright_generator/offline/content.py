"""The content sections and the FAQ, built from the site's own headings, sentences and questions."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from sitewright_contracts.models import PageSummary

from ..output_format import FAQS, clip
from .model import _WORD, _heading_text, _Phrases, _Segment, _Sentence, _Site
from .naming import _best, _is_generic, _join, _prose, _title_parts

SECTION_TARGET = 6
SECTION_BODY_CHARS = 650
ANSWER_CHARS = 450
# Headings that label page furniture rather than content.
_FURNITURE = frozenset(
    "menu|navigation|main navigation|main menu|footer|header|sidebar|search|follow us|share|"
    "share this|newsletter|subscribe|social|quick links|useful links|related posts|recent posts|"
    "categories|tags|archives|skip to content|cart|basket|log in|login|sign in|my account|"
    "breadcrumb|cookies|cookie settings".split("|")
)
_DAY = re.compile(
    r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?|daily|"
    r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|täglich|"
    r"lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|"
    r"lunes|martes|miércoles|jueves|viernes|sábado|domingo)\b",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b\d{1,2}(?:[:.]\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.|uhr|h)(?!\w)|\b\d{1,2}:\d{2}\b", re.I)
_OPEN = re.compile(r"\b(open|opens|closed|hours|geöffnet|geschlossen|ouvert|fermé|abierto|cerrado)\b", re.I)
_ADDRESS = re.compile(
    r"\b\d+[a-z]?\s+([A-Z][\w'.-]*\s+){1,3}"
    r"(street|st|road|rd|avenue|ave|lane|ln|way|boulevard|blvd|drive|dr|square|sq|place|pl|"
    r"court|ct|highway|hwy|parkway|terrace)\b|\blocated\b|\bfind us\b",
    re.IGNORECASE,
)
_CONTACT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+|(\+?\d[\d\s().-]{7,}\d)|\b(call|phone|email|e-mail)\b", re.IGNORECASE)
_PRICE = re.compile(r"[$€£¥]\s?\d|\b\d+(?:[.,]\d+)?\s?(usd|eur|gbp|dollars|euros|pounds)\b", re.I)


def _mentions_hours(text: str) -> bool:
    # A day alone ("every first Saturday we run a class") is not an opening time.
    return bool(_TIME.search(text) or (_DAY.search(text) and _OPEN.search(text)))


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
    ranked = {page: sorted(items, key=lambda item: (-item[0], item[1].index)) for page, items in per_page.items()}
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
        for page_index, summary in enumerate(site.pages):
            if page_index in covered or len(sections) >= SECTION_TARGET:
                continue
            prose = [s for seg in site.segments if seg.page == page_index for s in seg.sentences]
            heading = _page_heading(summary, name, words)
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
    parts = [p for p in _title_parts(page.title) if not _is_generic(p) and p.lower() != name.lower()]
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
        on_topic = [s for s in matches if any(word in site.heading_of(s).lower() for word in intent.heading_words)]
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
        chosen = [replace(chosen[0], text=clip(chosen[0].text, ANSWER_CHARS))]
    return chosen
