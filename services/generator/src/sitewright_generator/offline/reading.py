"""Reading the site: its pages cut into segments and sentences, each sentence scored by topic."""

from __future__ import annotations

import math
import re
from collections import Counter

from sitewright_contracts.models import Heading, PageSummary

from .model import _WORD, _Segment, _Sentence, _Site

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
# A sentence ends at . ! ? or … followed by space and something that can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-ZÀ-ÖØ-Þ0-9])")
_ABBREVIATIONS = frozenset("mr mrs ms dr prof st no nr vs etc e.g i.e approx inc ltd co jr sr mt ft ave rd".split())


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
            distinct = list(dict.fromkeys(sentence.stems))
            weight = sum(frequency[stem] for stem in distinct) / top
            # Dividing by the square root favours dense sentences without punishing long ones.
            score = weight / math.sqrt(len(distinct)) if distinct else 0.0
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


def _split_segments(page_index: int, page: PageSummary, text: str) -> list[tuple[_Segment, list[tuple[int, str]]]]:
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
    for index, (under, piece) in enumerate(pieces):
        lines = []
        for line in _unwrap_lines(piece.split("\n")):
            line_no += 1
            lines.append((line_no, line))
        result.append((_Segment(page=page_index, index=index, heading=under), lines))
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
