"""Markdown as the pages show it: the one function every place that shows an answer calls.

The live chat (each streamed fragment), a reload, a share page and the admin all call
:func:`render_markdown`, so an answer looks the same wherever it is read. markdown-it-py parses
with raw HTML off (HTML in an answer is shown as text), Pygments colours code blocks, and nh3
sanitises the result against an allowlist as the last step, whatever the steps before let through.

While an answer streams, :func:`close_open_blocks` closes what the text so far leaves open (a code
fence, ``**``, a code span, a link whose address is still coming), so the open block renders as
it will look once finished instead of flickering between raw and rendered text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from .paths import PathView

# Class names Pygments gives its spans ("k", "s2", ...): the only classes a span may keep.
_PYGMENTS_CLASSES = {name for name in STANDARD_TYPES.values() if name}
_FORMATTER = HtmlFormatter(nowrap=True)
# What a rendered answer may contain; everything else is dropped by nh3 (attributes such as
# hx-get or ws-send included, which htmx would otherwise act on).
_CLEANER = nh3.Cleaner(
    tags={
        "p",
        "br",
        "hr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "strong",
        "em",
        "del",
        "s",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "span",
        "div",
        "button",
    },
    attributes={"a": {"href", "title"}, "ol": {"start"}, "button": {"type", "aria-label"}},
    allowed_classes={
        "span": _PYGMENTS_CLASSES | {"code-lang"},
        "div": {"code-block", "code-head"},
        "pre": {"highlight"},
        "button": {"copy-code"},
        "th": {"align-left", "align-center", "align-right"},
        "td": {"align-left", "align-center", "align-right"},
    },
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def _code_block(code: str, lang: str) -> str:
    """A code block with its language (if given) and a Copy button (static/app/app.js copies it)."""
    body = escape(code)
    if lang:
        try:
            body = highlight(code, get_lexer_by_name(lang, stripnl=False, ensurenl=False), _FORMATTER)
        except ClassNotFound:
            pass  # an unknown language: plain text
    label = f'<span class="code-lang">{escape(lang)}</span>' if lang else ""
    return (
        f'<div class="code-block"><div class="code-head">{label}'
        '<button type="button" class="copy-code" aria-label="Copy this code">Copy</button></div>'
        f'<pre class="highlight"><code>{body}</code></pre></div>\n'
    )


def _fence(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    return _code_block(token.content, lang)


def _indented_code(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return _code_block(tokens[idx].content, "")


def _image(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image as a link to it: a page loads nothing from elsewhere because an answer said so."""
    token = tokens[idx]
    alt = "".join(child.content for child in token.children or []) or "image"
    return f'<a href="{escape(str(token.attrGet("src") or ""))}">{escape(alt)} (image)</a>'


_ALIGN_RE = re.compile(r"text-align:(left|center|right)")


def _align_as_class(state: Any) -> None:
    """Table alignment as a class: a style attribute would break the Content-Security-Policy."""
    for token in state.tokens:
        style = token.attrGet("style")
        if token.type in ("th_open", "td_open") and style:
            token.attrs.pop("style", None)
            if match := _ALIGN_RE.search(str(style)):
                token.attrSet("class", f"align-{match.group(1)}")


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _indented_code)
    md.add_render_rule("image", _image)
    md.core.ruler.push("align_as_class", _align_as_class)
    return md


_MD = _parser()


def render_markdown(text: str, *, streaming: bool = False, paths: PathView | None = None) -> str:
    """``text`` (Markdown) as safe HTML. ``streaming``: the text is still coming, close what it
    leaves open. ``paths``: how its paths are shown (relative to the chat's folder, no server folder)."""
    if paths is not None:
        text = paths.text(text)
    if streaming:
        text = close_open_blocks(text)
    return _CLEANER.clean(_MD.render(text))


# -- closing what a streaming text leaves open -------------------------------------------------
_FENCE_RE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_TRAILING_MARKS_RE = re.compile(r"[*_~`]+$")
# "[text](http://exa": the address is still coming; show the text until it has.
_OPEN_LINK_RE = re.compile(r"!?\[([^\[\]\n]*)\]\([^()\s]*$")


def close_open_blocks(text: str) -> str:
    """``text`` cut off mid-stream, made into the Markdown it will most likely be once complete:
    an open code fence closed, a half-typed marker at the end dropped, and open inline markers
    (``**``, ``*``, ``_``, ``~~``, a code span) of the last block closed."""
    fence: tuple[str, str] | None = None  # (indent, marker) of the open fence
    fence_start = block_start = offset = 0
    lines = text.split("\n")
    for number, line in enumerate(lines):
        match = _FENCE_RE.match(line)
        if fence is None and match and not (match.group(2)[0] == "`" and "`" in match.group(3)):
            fence, fence_start = (match.group(1), match.group(2)), offset
        elif (
            fence is not None
            and match
            and match.group(2)[0] == fence[1][0]
            and len(match.group(2)) >= len(fence[1])
            and not match.group(3).strip()
        ):
            fence = None
            block_start = offset + len(line) + 1
        elif fence is None and not line.strip():
            block_start = offset + len(line) + 1
        if number < len(lines) - 1:
            offset += len(line) + 1
    if fence is not None:
        if fence_start == offset:  # the fence's first line is still coming (its language half typed)
            return close_open_blocks(text[:fence_start].rstrip("\n"))
        last = lines[-1]
        if last.strip() and set(last.strip()) <= {fence[1][0]}:
            text = text[: len(text) - len(last)]  # a closing fence half typed
        return text.rstrip("\n") + "\n" + fence[0] + fence[1]
    head, tail = text[:block_start], text[block_start:]
    tail = _OPEN_LINK_RE.sub(lambda m: m.group(1), _TRAILING_MARKS_RE.sub("", tail))
    closers = _open_markers(tail)
    if closers:
        tail = tail.rstrip() + "".join(reversed(closers))
    return head + tail


def _open_markers(text: str) -> list[str]:
    """The inline markers ``text`` opens and does not close, the innermost last."""
    stack: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char not in "`*_~":
            i += 1
            continue
        j = i
        while j < n and text[j] == char:
            j += 1
        run = text[i:j]
        if char == "`":
            close = _code_span_end(text, j, run)
            if close is None:
                stack.append(run)  # an open code span: the rest is code
                return stack
            i = close
            continue
        before = text[i - 1] if i else " "
        after = text[j] if j < n else " "
        closes = not before.isspace()
        opens = not after.isspace()
        if char == "_":  # no emphasis inside words (snake_case)
            closes = closes and not after.isalnum()
            opens = opens and not before.isalnum()
        pieces = {"*": ["**", "*"], "_": ["__", "_"], "~": ["~~"]}[char] if len(run) == 3 or char == "~" else [run]
        if len(run) > 3 or (char == "~" and len(run) != 2):
            pieces = []
        for piece in pieces if not closes else list(reversed(pieces)):
            if closes and piece in stack:
                del stack[len(stack) - 1 - stack[::-1].index(piece)]
            elif opens:
                stack.append(piece)
        i = j
    return stack


def _code_span_end(text: str, start: int, run: str) -> int | None:
    """Where the code span opened by ``run`` (ending at ``start``) ends, if it does."""
    for match in re.finditer("`+", text[start:]):
        if match.group(0) == run:
            return start + match.end()
    return None
