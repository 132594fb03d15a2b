"""Parsing provider output: what is tolerated, what is repaired, what is refused and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sitewright_generator.output_format import clip
from sitewright_generator.parse import OutputInvalid, parse_output


def good(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "meta": {
            "title": "Crumb & Co | Sourdough bakery in Portland",
            "description": "Naturally leavened bread, croissants and cakes baked every morning "
            "in our Portland bakery. Order online or visit us on Alder Street.",
        },
        "content": [
            {"heading": "Our bread", "body": "Every loaf rises for eighteen hours."},
            {"heading": "Pastries", "body": "Croissants are laminated by hand each night."},
            {"heading": "Visit us", "body": "We are open every day from 7am."},
        ],
        "faq": [
            {"question": "Do you bake gluten-free bread?", "answer": "Yes, on Fridays."},
            {"question": "Can I order a cake?", "answer": "Yes, with two days' notice."},
            {"question": "Where are you?", "answer": "On Alder Street in Portland."},
        ],
        "schema": {"@context": "https://schema.org", "@type": "Bakery", "name": "Crumb & Co"},
    }
    data.update(overrides)
    return data


def test_plain_json_parses() -> None:
    result = parse_output(json.dumps(good()))
    assert result.meta.title == "Crumb & Co | Sourdough bakery in Portland"
    assert len(result.content) == 3 and len(result.faq) == 3
    assert result.model_dump()["schema"]["@type"] == "Bakery"


def test_markdown_fence_is_tolerated() -> None:
    text = "```json\n" + json.dumps(good(), indent=2) + "\n```"
    assert parse_output(text).meta.title.startswith("Crumb & Co")


def test_prose_around_the_object_is_tolerated() -> None:
    text = (
        "Sure! Here is the content for {your site}, as requested:\n\n"
        + json.dumps(good())
        + "\n\nLet me know if you want changes to the {tone}."
    )
    assert len(parse_output(text).content) == 3


def test_object_wrapped_under_one_key_is_unwrapped() -> None:
    assert parse_output(json.dumps({"result": good()})).meta.title.startswith("Crumb")


def test_overlong_title_is_cut_at_a_word_without_trailing_punctuation() -> None:
    title = "Crumb & Co Bakery | Sourdough Bread, Croissants, Celebration Cakes and Coffee - Open Every Day in Portland"
    data = good(meta={"title": title, "description": "Fresh bread every morning in Portland."})
    result = parse_output(json.dumps(data))
    assert len(result.meta.title) <= 70
    assert title.startswith(result.meta.title)
    assert result.meta.title[-1].isalnum()
    assert not result.meta.title.endswith((" and", " -", " |", ","))


def test_overlong_description_is_cut_within_the_limit() -> None:
    description = "Fresh sourdough bread baked every morning in Portland. " * 6
    data = good(meta={"title": "Crumb & Co", "description": description})
    result = parse_output(json.dumps(data))
    assert len(result.meta.description) <= 170
    assert result.meta.description.endswith(".")


def test_whitespace_is_stripped_and_empty_items_dropped() -> None:
    data = good(
        content=[
            {"heading": "  Our bread \n", "body": "\n Every loaf rises slowly.  "},
            {"heading": "", "body": "orphan body"},
            {"heading": "No body", "body": "   "},
        ],
        faq=[{"question": " Why? ", "answer": " Because. "}, {"question": "", "answer": ""}],
    )
    result = parse_output(json.dumps(data))
    sections = [(s.heading, s.body) for s in result.content]
    assert sections == [("Our bread", "Every loaf rises slowly.")]
    assert [(f.question, f.answer) for f in result.faq] == [("Why?", "Because.")]


def test_schema_given_as_a_json_string_is_parsed() -> None:
    schema = json.dumps({"@context": "https://schema.org", "@type": "Bakery", "name": "Crumb"})
    result = parse_output(json.dumps(good(schema=schema)))
    assert result.model_dump()["schema"] == json.loads(schema)


def test_missing_context_is_added_when_a_type_is_present() -> None:
    result = parse_output(json.dumps(good(schema={"@type": "WebSite", "name": "Crumb"})))
    schema = result.model_dump()["schema"]
    assert schema["@context"] == "https://schema.org"
    assert schema["@type"] == "WebSite"


def test_a_bare_list_of_nodes_becomes_a_graph() -> None:
    nodes = [{"@type": "WebSite", "name": "Crumb"}, {"@type": "Bakery", "name": "Crumb"}]
    schema = parse_output(json.dumps(good(schema=nodes))).model_dump()["schema"]
    assert schema == {"@context": "https://schema.org", "@graph": nodes}


def test_paragraphs_given_as_a_list_are_joined() -> None:
    data = good(content=[{"heading": "Bread", "body": ["One.", "Two."]}])
    assert parse_output(json.dumps(data)).content[0].body == "One.\n\nTwo."


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I cannot help with that.",
        "Here you go: [1, 2, 3]",
        '{"meta": {"title": "cut off',
    ],
)
def test_text_without_a_json_object_is_output_not_json(text: str) -> None:
    with pytest.raises(OutputInvalid) as caught:
        parse_output(text)
    assert caught.value.code == "output_not_json"
    assert caught.value.message


def test_cut_off_output_is_output_not_json_even_with_complete_inner_objects() -> None:
    text = json.dumps(good())[:-40]
    with pytest.raises(OutputInvalid) as caught:
        parse_output(text)
    assert caught.value.code == "output_not_json"
    assert "cut off" in caught.value.message


def test_json_object_of_another_shape_is_output_invalid() -> None:
    with pytest.raises(OutputInvalid) as caught:
        parse_output('I used {curly braces} here: {"answer": "hello", "ok": true}')
    assert caught.value.code == "output_invalid"


def test_missing_meta_is_refused() -> None:
    data = good()
    del data["meta"]
    with pytest.raises(OutputInvalid) as caught:
        parse_output(json.dumps(data))
    assert caught.value.code == "output_invalid"
    assert "meta" in caught.value.message


def test_missing_title_is_refused_with_its_path() -> None:
    with pytest.raises(OutputInvalid) as caught:
        parse_output(json.dumps(good(meta={"description": "Fresh bread."})))
    assert caught.value.code == "output_invalid"
    assert "meta.title" in caught.value.message


@pytest.mark.parametrize("content", [[], [{"heading": "", "body": ""}], [{"heading": "Only a heading"}]])
def test_empty_content_is_refused(content: list[Any]) -> None:
    with pytest.raises(OutputInvalid) as caught:
        parse_output(json.dumps(good(content=content)))
    assert caught.value.code == "output_invalid"
    assert "content" in caught.value.message


def test_content_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(OutputInvalid) as caught:
        parse_output(json.dumps(good(content="Some text")))
    assert caught.value.code == "output_invalid"


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"name": "Crumb"}, "@type"),
        ({"@context": "https://example.com", "@type": "Thing"}, "@context"),
        ("not json at all", "not JSON"),
        (None, "schema is missing"),
        (42, "JSON-LD object"),
    ],
)
def test_unusable_schema_is_refused(schema: Any, words: str) -> None:
    data = good(schema=schema)
    if schema is None:
        del data["schema"]
    with pytest.raises(OutputInvalid) as caught:
        parse_output(json.dumps(data))
    assert caught.value.code == "output_invalid"
    assert words in caught.value.message


def test_error_is_an_exception_with_code_and_message() -> None:
    error = OutputInvalid("output_invalid", "meta is missing")
    assert isinstance(error, Exception)
    assert (error.code, error.message) == ("output_invalid", "meta is missing")
    assert "meta is missing" in str(error)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Short enough", 70, "Short enough"),
        ("Bread, cakes and pastries | Crumb", 20, "Bread, cakes"),
        ("Bread and cakes - baked daily", 18, "Bread and cakes"),
        ("One sentence here. Another one follows it.", 30, "One sentence here."),
        ("x" * 50, 10, "x" * 10),
    ],
)
def test_clip(text: str, limit: int, expected: str) -> None:
    assert clip(text, limit) == expected


CORPUS = sorted((Path(__file__).parent / "parse_corpus").glob("*.txt"))


@pytest.mark.parametrize("path", [p for p in CORPUS if p.name.startswith("good-")], ids=lambda p: p.stem)
def test_corpus_good_outputs_parse_to_valid_results(path: Path) -> None:
    result = parse_output(path.read_text(encoding="utf-8"))
    assert 0 < len(result.meta.title) <= 70 and 0 < len(result.meta.description) <= 170
    assert result.content and all(s.heading and s.body for s in result.content)
    assert all(f.question and f.answer for f in result.faq)
    schema = result.model_dump()["schema"]
    assert schema["@context"] == "https://schema.org"
    nodes = schema.get("@graph", [schema])
    for node in nodes:
        types = node["@type"] if isinstance(node["@type"], list) else [node["@type"]]
        assert all(t[0].isupper() and t.isalnum() for t in types), node
    assert json.loads(json.dumps(schema)) == schema


@pytest.mark.parametrize("path", [p for p in CORPUS if p.name.startswith("bad-")], ids=lambda p: p.stem)
def test_corpus_broken_outputs_are_refused_with_their_code(path: Path) -> None:
    expected = path.stem.split("-")[1]
    with pytest.raises(OutputInvalid) as caught:
        parse_output(path.read_text(encoding="utf-8"))
    assert caught.value.code == expected, caught.value
    assert len(caught.value.message) > 10


def test_trailing_commas_are_dropped_only_outside_strings() -> None:
    text = json.dumps(good(content=[{"heading": "Lists, ]", "body": "a, }"}])).replace("]}", "],}")
    result = parse_output(text.replace('"body": "a, }"}', '"body": "a, }",}'))
    assert (result.content[0].heading, result.content[0].body) == ("Lists, ]", "a, }")


def test_type_given_as_a_url_is_shortened_and_lists_are_kept() -> None:
    schema = {"@context": "https://schema.org", "@type": ["schema:Bakery", "https://schema.org/Cafe"]}
    assert parse_output(json.dumps(good(schema=schema))).model_dump()["schema"]["@type"] == ["Bakery", "Cafe"]
