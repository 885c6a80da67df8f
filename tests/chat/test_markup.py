"""Answers as the pages show them: Markdown rendered, HTML inert, and streaming text closed."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from chat.markup import close_open_blocks, render_markdown
from chat.paths import PathView


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every element of ``html`` with its attributes, as a browser would read them."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Parser().feed(html)
    return found


def test_markdown_is_rendered():
    html = render_markdown("# Plan\n\nSome **bold**, *it*, ~~old~~ and `code`.\n\n- one\n- two\n\n> quoted")
    assert "<h1>Plan</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html and "<s>old</s>" in html
    assert "<code>code</code>" in html
    assert "<ul>\n<li>one</li>" in html and "<blockquote>" in html


def test_a_line_break_in_a_paragraph_stays_a_line_break():
    assert "first<br>\nsecond" in render_markdown("first\nsecond")


def test_code_blocks_are_coloured_and_have_a_copy_button():
    html = render_markdown("```python\ndef f():\n    return '<b>'\n```")
    assert '<div class="code-block"><div class="code-head"><span class="code-lang">python</span>' in html
    assert '<button type="button" class="copy-code" aria-label="Copy this code">Copy</button>' in html
    assert '<pre class="highlight"><code><span class="k">def</span>' in html
    assert "&lt;b&gt;" in html and "<b>" not in html


def test_a_code_block_in_an_unknown_language_or_none_is_plain_escaped_text():
    html = render_markdown("```nosuchlanguage\na < b\n```\n\n    indented <i>")
    assert '<span class="code-lang">nosuchlanguage</span>' in html
    assert "<code>a &lt; b\n</code>" in html and "<code>indented &lt;i&gt;\n</code>" in html
    assert html.count('class="copy-code"') == 2


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="/" hx-post="/chat/new/">click</a>',
        "<style>body{display:none}</style>",
        "<!-- a comment -->",
    ],
)
def test_html_in_an_answer_stays_inert_text(attack):
    html = render_markdown(f"Look: {attack}")
    assert elements(html) == [("p", {})]
    assert "&lt;" in html  # shown as text


def test_javascript_and_data_links_are_not_links():
    html = render_markdown("[a](javascript:alert(1)) [b](data:text/html;base64,PHNjcmlwdD4=) [c](JaVaScRiPt:alert(1))")
    assert "href" not in html


def test_links_open_in_a_new_tab_without_the_opener():
    html = render_markdown("[docs](https://example.com/docs)")
    assert '<a href="https://example.com/docs" target="_blank" rel="noopener noreferrer nofollow">docs</a>' in html


def test_an_image_is_a_link_to_it_not_a_load_from_elsewhere():
    html = render_markdown("![chart](https://example.com/track.png)")
    assert "<img" not in html
    assert '<a href="https://example.com/track.png"' in html and "chart (image)</a>" in html


def test_table_alignment_is_a_class_not_a_style_attribute():
    html = render_markdown("| a | b |\n|:-:|--:|\n| 1 | 2 |")
    assert '<th class="align-center">a</th>' in html and '<td class="align-right">2</td>' in html
    assert "style" not in html


def test_a_share_page_hides_the_servers_paths():
    html = render_markdown(
        "Saved `/srv/work/7/notes.txt` and /etc/passwd", paths=PathView(root="/srv/work/7", shared=True)
    )
    assert "/srv/work" not in html and "/etc" not in html
    assert "<code>notes.txt</code>" in html and "…/passwd" in html


def test_a_members_answer_names_files_within_the_chat_and_no_server_folder(settings):
    settings.CLAUDE_WORKDIR = "/srv/work"
    text = "Saved `/srv/work/7/notes.txt`; see /srv/work/8/x.txt and\n\n```sh\n#!/usr/bin/env sh\n```"
    html = render_markdown(text, paths=PathView(root="/srv/work/7"))
    assert "<code>notes.txt</code>" in html and "…/x.txt" in html and "#!/usr/bin/env sh" in html


@pytest.mark.parametrize(
    ("partial", "closed"),
    [
        ("Here is **bold", "Here is **bold**"),
        ("Here is **bold*", "Here is **bold**"),  # the closing marker half arrived
        ("Here is **", "Here is "),
        ("run `ls -l", "run `ls -l`"),
        ("a *b and **c", "a *b and **c***"),
        ("**b `c", "**b `c`**"),
        ("snake_case and more", "snake_case and more"),
        ("see [the docs](https://exa", "see the docs"),
        ("done **a** and *b*", "done **a** and *b*"),
        ("* a list item", "* a list item"),
        ("```python\nprint(1)", "```python\nprint(1)\n```"),
        ("Code:\n\n```pyt", "Code:"),  # the language is still coming: no block in a wrong language yet
        ("Code:\n\n```python\n", "Code:\n\n```python\n```"),
        ("```python\nprint(1)\n``", "```python\nprint(1)\n```"),
        ("  ~~~\ncode", "  ~~~\ncode\n  ~~~"),
        ("```\n**not bold", "```\n**not bold\n```"),
        ("```\nx\n```\n\nafter **b", "```\nx\n```\n\nafter **b**"),
        ("first **para**\n\nsecond *one", "first **para**\n\nsecond *one*"),
    ],
)
def test_a_streaming_text_is_closed_before_rendering(partial, closed):
    assert close_open_blocks(partial) == closed


def test_a_streaming_answer_never_shows_a_raw_fence_or_markers():
    answer = "Intro with **bold** text.\n\n```python\ndef f():\n    return 1\n```\n\nAnd `code` too."
    final = render_markdown(answer)
    for end in range(1, len(answer) + 1):
        html = render_markdown(answer[:end], streaming=True)
        assert "```" not in html and "**" not in html, answer[:end]
        if "```python\n" in answer[:end]:
            assert '<span class="code-lang">python</span>' in html
    assert render_markdown(answer, streaming=True) == final
