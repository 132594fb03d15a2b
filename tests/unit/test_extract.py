"""HTML in, page summary out: no network."""

from __future__ import annotations

from sitewright_crawler.extract import Directives, extract_page, parse_robots_directives, trim_text

PAGE = """<!doctype html>
<html lang="en-GB">
<head>
  <title>  Acme   Widgets | Home </title>
  <meta name="Description" content="  The best widgets,
      made by hand. ">
  <meta property="og:title" content="Acme Widgets">
  <meta property="og:image" content="https://acme.test/first.png">
  <meta property="og:image" content="https://acme.test/second.png">
  <meta name="twitter:card" content="summary">
  <link rel="canonical" href="/widgets/#top">
  <script type="application/ld+json">
    {"@context": "https://schema.org", "@type": "Organization", "name": "Acme"}
  </script>
  <script type="application/ld+json">{"this is": not json}</script>
  <script type="application/ld+json">[{"@type": "WebSite"}, {"@type": "WebPage"}, "junk"]</script>
  <style>body { color: red }</style>
</head>
<body>
  <header class="site"><a href="/">Logo</a><nav><a href="/about">About us</a></nav></header>
  <div class="cookie" hidden>We use cookies</div>
  <main>
    <article>
      <header><h1>Hand-made   widgets</h1></header>
      <p>Our widgets are <b>sturdy</b>. They last for years!</p>
      <h2>Sizes</h2>
      <ul><li>Small</li><li>Large</li></ul>
      <h3>Care</h3>
      <p>See <a href="care.html#washing">care</a>, <a href="/terms" rel="NoFollow">terms</a>,
         <a href="mailto:hi@acme.test">mail</a>, <a href="javascript:void(0)">js</a>,
         <a href="#top">top</a> and <a href="https://other.test/x?y=1#z">a partner</a>.</p>
      <h4>Not collected</h4>
      <form><label>Email <input name="e"></label><button>Subscribe</button></form>
    </article>
  </main>
  <aside><h2>Related</h2>Sidebar text</aside>
  <footer><a href="/about">About us</a> Copyright Acme</footer>
  <script>var tracking = "do not read";</script>
  <noscript>Enable JavaScript</noscript>
</body>
</html>"""


def test_metadata() -> None:
    summary, _, _ = extract_page("https://acme.test/widgets/", PAGE, depth=1, status=200)
    assert summary.url == "https://acme.test/widgets/"
    assert summary.depth == 1
    assert summary.status == 200
    assert summary.title == "Acme Widgets | Home"
    assert summary.description == "The best widgets, made by hand."
    assert summary.canonical == "https://acme.test/widgets/"
    assert summary.language == "en-GB"


def test_headings_come_from_the_content_only() -> None:
    summary, _, _ = extract_page("https://acme.test/widgets/", PAGE, depth=0)
    assert [(h.level, h.text) for h in summary.headings] == [
        (1, "Hand-made widgets"),
        (2, "Sizes"),
        (3, "Care"),
    ]


def test_main_text_leaves_out_boilerplate() -> None:
    summary, _, _ = extract_page("https://acme.test/widgets/", PAGE, depth=0)
    lines = summary.text.split("\n")
    assert lines[:5] == [
        "Hand-made widgets",
        "Our widgets are sturdy. They last for years!",
        "Sizes",
        "Small",
        "Large",
    ]
    chrome = ["Logo", "About", "cookies", "Sidebar", "Copyright", "tracking", "JavaScript", "color"]
    assert [word for word in chrome if word in summary.text] == []
    assert "Subscribe" not in summary.text


def test_body_is_used_without_main_or_article() -> None:
    html = "<body><nav>Menu</nav><div><p>First  para.</p><p>Second\npara.</p></div><footer>F</footer>"
    summary, _, _ = extract_page("https://acme.test/", html, depth=0)
    assert summary.text == "First para.\nSecond para."


def test_json_ld_blocks_are_parsed_and_invalid_ones_skipped() -> None:
    summary, _, _ = extract_page("https://acme.test/", PAGE, depth=0)
    assert summary.json_ld == [
        {"@context": "https://schema.org", "@type": "Organization", "name": "Acme"},
        {"@type": "WebSite"},
        {"@type": "WebPage"},
    ]


def test_open_graph_keeps_the_first_of_repeated_properties() -> None:
    summary, _, _ = extract_page("https://acme.test/", PAGE, depth=0)
    assert summary.open_graph == {
        "og:title": "Acme Widgets",
        "og:image": "https://acme.test/first.png",
    }


def test_links_are_absolute_without_fragments_and_skip_nofollow() -> None:
    _, links, _ = extract_page("https://acme.test/widgets/", PAGE, depth=0)
    assert links == [
        "https://acme.test/",
        "https://acme.test/about",
        "https://acme.test/widgets/care.html",
        "https://other.test/x?y=1",
    ]


def test_base_href_moves_relative_links() -> None:
    html = '<head><base href="https://cdn.acme.test/docs/"></head><body><a href="page">p</a></body>'
    _, links, _ = extract_page("https://acme.test/", html, depth=0)
    assert links == ["https://cdn.acme.test/docs/page"]


def test_robots_meta() -> None:
    def directives(content: str) -> Directives:
        html = f'<head><meta name="ROBOTS" content="{content}"></head><body>x</body>'
        return extract_page("https://acme.test/", html, depth=0)[2]

    assert directives("index, follow") == Directives(noindex=False, nofollow=False)
    assert directives("NOINDEX") == Directives(noindex=True, nofollow=False)
    assert directives("noindex,nofollow") == Directives(noindex=True, nofollow=True)
    assert directives("none") == Directives(noindex=True, nofollow=True)
    assert extract_page("https://acme.test/", PAGE, depth=0)[2] == Directives()
    assert parse_robots_directives("googlebot: noindex") == Directives()


def test_text_is_trimmed_at_a_sentence_or_word_boundary() -> None:
    body = "<p>" + " ".join(["This sentence has six words."] * 40) + "</p>"
    summary, _, _ = extract_page("https://acme.test/", body, depth=0, max_text_chars=100)
    assert len(summary.text) <= 100
    assert summary.text.endswith("words.")
    assert trim_text("alpha beta gamma", 12) == "alpha beta"
    assert trim_text("short", 10) == "short"


def test_empty_and_hostile_documents() -> None:
    summary, links, directives = extract_page("https://acme.test/", "", depth=0)
    assert (summary.title, summary.text, links, directives) == ("", "", [], Directives())
    deep = "<div>" * 5000 + "bottom" + "</div>" * 5000
    assert extract_page("https://acme.test/", deep, depth=0)[0].text == "bottom"


def test_title_falls_back_to_the_first_h1() -> None:
    summary, _, _ = extract_page("https://acme.test/", "<body><h1>Only a heading</h1></body>", depth=0)
    assert summary.title == "Only a heading"
