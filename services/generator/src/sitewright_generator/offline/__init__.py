"""The offline provider: deterministic, extractive SEO copy built from the crawl itself.

It lets the product work with no API key. Everything it writes is taken from the site: the
sentences that best represent what the site talks about (term frequency over the whole site,
stopwords removed), its own headings, its own questions. The few words it adds itself (derived
questions, fallbacks) exist in English, German, French and Spanish; the copy stays in the site's
own language. No output depends on set order or hashing, so the same crawl always gives
byte-identical output.
"""

from .content import ANSWER_CHARS, SECTION_BODY_CHARS, SECTION_TARGET
from .jsonld import SCHEMA_CONTEXT
from .provider import INLINE_TEXT_CHARS, OfflineProvider, build_result, render_chunks
from .reading import STOPWORDS

__all__ = [
    "ANSWER_CHARS",
    "INLINE_TEXT_CHARS",
    "SCHEMA_CONTEXT",
    "SECTION_BODY_CHARS",
    "SECTION_TARGET",
    "STOPWORDS",
    "OfflineProvider",
    "build_result",
    "render_chunks",
]
