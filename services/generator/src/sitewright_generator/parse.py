"""Turn a provider's raw text into a validated SeoResult, repairing only what is safe to repair."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from sitewright_contracts.models import SeoResult

from .output_format import DESCRIPTION_MAX, TITLE_MAX, clip

SCHEMA_CONTEXT = "https://schema.org"
# Outputs far beyond what the format asks for are a runaway model, not content worth scanning.
MAX_OUTPUT_CHARS = 500_000
_TOP_KEYS = ("meta", "content", "faq", "schema")
_TYPE_PREFIX = re.compile(r"^(?:https?://schema\.org/|schema:)", re.I)
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z0-9]{1,60}")
# schema.org types that are values inside a description (data types, parts of a page, details of
# a business), never what a site's JSON-LD is about on their own.
_NOT_A_SUBJECT = frozenset(
    """Text URL Number Integer Float Boolean Date DateTime Time DataType Question Answer ListItem
    ItemList BreadcrumbList SiteNavigationElement WPHeader WPFooter WPSideBar ImageObject SearchAction
    EntryPoint PropertyValue PostalAddress GeoCoordinates OpeningHoursSpecification ContactPoint Rating
    AggregateRating Offer AggregateOffer""".split()
)
# Each failed attempt to decode from a "{" can scan to the end of the text; bound the total work.
_MAX_DECODE_ATTEMPTS = 200


class OutputInvalid(Exception):
    """A provider's output that cannot be turned into a SeoResult; `code` is for programs."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_output(text: str) -> SeoResult:
    """Parse, repair and validate a provider's output; raise OutputInvalid if it is unusable."""
    if not text or not text.strip():
        raise OutputInvalid("output_not_json", "the output is empty")
    if len(text) > MAX_OUTPUT_CHARS:
        raise OutputInvalid(
            "output_invalid",
            f"the output is {len(text)} characters, over the {MAX_OUTPUT_CHARS} limit",
        )
    try:
        found = _find_object(text)
    except OutputInvalid as first:
        # Trailing commas are the commonest slip in hand-written JSON, and dropping them cannot
        # change what the rest means; anything else stays refused.
        repaired = _drop_trailing_commas(text)
        if repaired == text:
            raise
        try:
            found = _find_object(repaired)
        except OutputInvalid:
            raise first from None
    data = _repair(found)
    try:
        return SeoResult.model_validate(data)
    except ValidationError as exc:
        raise OutputInvalid("output_invalid", _describe(exc)) from None


def _find_object(text: str) -> dict[str, Any]:
    """The outermost JSON object in text that looks like our format, ignoring fences and prose."""
    decoder = json.JSONDecoder()
    position = text.find("{")
    attempts = 0
    saw_object = False
    # How far the furthest failed decode got: an object found before that point sits inside a
    # broken (often cut-off) outer object, so it does not count as what the provider answered.
    failed_reach = -1
    failure = ""
    while position != -1 and attempts < _MAX_DECODE_ATTEMPTS:
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            if exc.pos > failed_reach:
                failed_reach, failure = exc.pos, exc.msg
            position = text.find("{", position + 1)
            continue
        except RecursionError:
            failed_reach, failure = len(text), "nested too deeply"
            break
        if isinstance(value, dict):
            found = _unwrap(value)
            if found is not None:
                return found
            saw_object = saw_object or position > failed_reach
        # Whatever decoded here was complete, so nothing inside it can be the outermost object.
        position = text.find("{", end)
    if saw_object:
        raise OutputInvalid(
            "output_invalid",
            "found JSON, but no object with any of the keys " + ", ".join(_TOP_KEYS),
        )
    detail = f" ({failure} at character {failed_reach})" if failure else ""
    raise OutputInvalid("output_not_json", f"no complete JSON object in the output; is it cut off?{detail}")


def _unwrap(value: dict[str, Any]) -> dict[str, Any] | None:
    """The object itself, or the one it wraps under a single key such as {"result": {...}}."""
    if any(key in value for key in _TOP_KEYS):
        return value
    if len(value) == 1:
        inner = next(iter(value.values()))
        if isinstance(inner, dict) and any(key in inner for key in _TOP_KEYS):
            return inner
    return None


def _repair(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    meta = data.get("meta")
    if meta is None:
        raise OutputInvalid("output_invalid", "meta is missing")
    if not isinstance(meta, dict):
        raise OutputInvalid("output_invalid", "meta must be an object with title and description")
    meta = dict(meta)
    for key, limit in (("title", TITLE_MAX), ("description", DESCRIPTION_MAX)):
        value = meta.get(key)
        if isinstance(value, str):
            meta[key] = clip(value, limit)
    data["meta"] = meta

    if "content" not in data:
        raise OutputInvalid("output_invalid", "content is missing")
    data["content"] = _items(data["content"], "content", ("heading", "body"))
    if not data["content"]:
        raise OutputInvalid("output_invalid", "content has no section with both a heading and a body")
    data["faq"] = _items(data.get("faq") or [], "faq", ("question", "answer"))

    data["schema"] = _schema(data.get("schema"))
    return data


def _items(value: Any, name: str, fields: tuple[str, str]) -> list[Any]:
    """Items with whitespace stripped and incomplete ones dropped; odd ones left to validation."""
    if not isinstance(value, list):
        raise OutputInvalid("output_invalid", f"{name} must be a list of objects")
    items: list[Any] = []
    for item in value:
        if not isinstance(item, dict):
            items.append(item)
            continue
        item = dict(item)
        for field in fields:
            text = item.get(field)
            # Paragraphs given as a list are the same content in another shape.
            if isinstance(text, list) and all(isinstance(part, str) for part in text):
                text = "\n\n".join(part.strip() for part in text if part.strip())
            if isinstance(text, str):
                item[field] = text.strip()
        if any(item.get(field) is None or item.get(field) == "" for field in fields):
            continue
        items.append(item)
    return items


def _schema(value: Any) -> dict[str, Any]:
    if value is None:
        raise OutputInvalid("output_invalid", "schema is missing")
    if isinstance(value, str):
        try:
            value = json.loads(_strip_fence(value))
        except json.JSONDecodeError as exc:
            message = f"schema is a string that is not JSON: {exc}"
            raise OutputInvalid("output_invalid", message) from None
    if isinstance(value, list) and value and all(isinstance(node, dict) for node in value):
        # A bare list of nodes is what @graph means; the shared @context moves up to the wrapper.
        value = {"@graph": [{k: v for k, v in node.items() if k != "@context"} for node in value]}
    if not isinstance(value, dict):
        raise OutputInvalid("output_invalid", "schema must be a JSON-LD object")
    if not (value.get("@type") or value.get("@graph")):
        raise OutputInvalid("output_invalid", "schema has no @type (nor an @graph of typed nodes)")
    if "@context" not in value:
        value = {"@context": SCHEMA_CONTEXT, **value}
    return _check_types(value)


def _check_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Every node typed with schema.org type names, and at least one that can describe a site."""
    graph = schema.get("@graph")
    if graph is not None and not (isinstance(graph, list) and graph and all(isinstance(n, dict) for n in graph)):
        raise OutputInvalid("output_invalid", "schema @graph must be a non-empty list of objects")
    nodes = [dict(node) for node in graph] if graph is not None else [schema]
    if graph is not None and "@type" in schema:
        nodes.insert(0, schema)
    subjects = 0
    for i, node in enumerate(nodes):
        types = _type_names(node.get("@type"), where=f"@graph[{i}]" if node is not schema else "")
        node["@type"] = types[0] if len(types) == 1 else types
        subjects += any(t not in _NOT_A_SUBJECT for t in types)
    if not subjects:
        raise OutputInvalid(
            "output_invalid",
            "schema @type names only parts of a page (e.g. Question, ListItem, Text); use a type for the "
            "site or business such as WebSite, Organization, LocalBusiness, Product or Article",
        )
    if graph is None:
        return {**schema, "@type": nodes[0]["@type"]}
    head = nodes.pop(0) if "@type" in schema else {}
    return {**schema, **({"@type": head["@type"]} if head else {}), "@graph": nodes}


def _type_names(value: Any, *, where: str) -> list[str]:
    at = f"schema{'.' + where if where else ''}.@type"
    if isinstance(value, str):
        value = [value]
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise OutputInvalid("output_invalid", f"{at} must be a schema.org type name or a list of them")
    names = []
    for name in value:
        # "https://schema.org/Bakery" and "schema:Bakery" name the same type as "Bakery".
        short = _TYPE_PREFIX.sub("", name.strip())
        if not _TYPE_NAME.fullmatch(short):
            raise OutputInvalid("output_invalid", f"{at} {name!r} is not a schema.org type name")
        names.append(short)
    return names


def _drop_trailing_commas(text: str) -> str:
    """Text with commas right before a closing bracket removed, outside JSON strings."""
    out: list[str] = []
    in_string = escaped = False
    pending = ""  # a comma and the whitespace after it, held until we see what follows
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if pending:
            if ch.isspace():
                pending += ch
                continue
            out.append(pending[1:] if ch in "}]" else pending)
            pending = ""
        if ch == ",":
            pending = ","
            continue
        out.append(ch)
        if ch == '"':
            in_string = True
    return "".join(out) + pending


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "output"
        where = where.replace("schema_", "schema")
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
