"""The rows of a file's table on the review page, as HTML written here rather than by the template.

A diff may hold thousands of lines, each with two numbered buttons: the template language took
several times as long as the patch's old rendering for them, so the rows are joined from strings
here (every text escaped), and only the comments, which are few, go through the template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from ..diffs import FileDiff, Pair, Row

if TYPE_CHECKING:
    from ..models import ReviewComment


@dataclass
class Shown:
    """A row of a file's table (a line, or a pair side by side) with the comments that end on it."""

    row: Row | Pair
    comments: list[ReviewComment] = field(default_factory=list)
    commented: str = ""  # "old", "new" or "" : a side whose line some comment covers


@dataclass
class ReviewFile:
    file: FileDiff
    index: int
    shown: list[Shown]
    elsewhere: list[ReviewComment]  # comments whose lines the diff does not show now
    html: str = ""  # the table's rows, safe HTML (diff_rows.rows_html)


def _number(side: str, number: int | None, may_review: bool) -> str:
    if number is None:
        return '<td class="ln"></td>'
    if not may_review:
        return f'<td class="ln">{number}</td>'
    return (
        f'<td class="ln"><button type="button" class="ln" data-side="{side}" data-line="{number}" '
        f'aria-label="Comment on line {number} ({side} version)">{number}</button></td>'
    )


def _code(row: Row | None) -> str:
    if row is None:
        return ""
    text = escape(row.text)
    if row.kind == "add":
        return f'<ins class="line add">{text}</ins>'
    if row.kind == "del":
        return f'<del class="line del">{text}</del>'
    return f'<span class="line {row.kind}">{text}</span>'


def rows_html(
    item: ReviewFile, *, split: bool, may_review: bool, comment: Callable[[ReviewComment], str]
) -> SafeString:
    """The table's rows: each line (or pair of lines side by side), then the comments ending on it."""
    columns = 4 if split else 3
    out: list[str] = []
    for shown in item.shown:
        row = shown.row
        if isinstance(row, Pair):
            if row.kind:
                out.append(f'<tr class="{row.kind}"><td colspan="4">{_code(row.left)}</td></tr>')
            else:
                marks = "".join(f" commented-{side}" for side in shown.commented.split())
                left, right = row.left, row.right
                out.append(
                    f'<tr class="pair{marks}">{_number("old", left.old if left else None, may_review)}'
                    f'<td class="code">{_code(left)}</td>{_number("new", right.new if right else None, may_review)}'
                    f'<td class="code">{_code(right)}</td></tr>'
                )
        elif row.kind in ("hunk", "meta"):
            out.append(f'<tr class="{row.kind}"><td colspan="3">{_code(row)}</td></tr>')
        else:
            marks = " commented" if shown.commented else ""
            out.append(
                f'<tr class="{row.kind}{marks}">{_number("old", row.old, may_review)}'
                f'{_number("new", row.new, may_review)}<td class="code">{_code(row)}</td></tr>'
            )
        for made in shown.comments:
            out.append(f'<tr class="comment-row"><td colspan="{columns}">{comment(made)}</td></tr>')
    return mark_safe("\n".join(out))
