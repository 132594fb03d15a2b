"""The site as the offline provider reads it (sentences, segments, scores) and the phrases it writes itself."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sitewright_contracts.models import Heading, PageSummary

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


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


def _heading_text(heading: Heading | None) -> str:
    return " ".join(heading.text.split()).strip(" :|-–—") if heading else ""
