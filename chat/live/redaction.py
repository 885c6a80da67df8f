"""Hiding the server's paths from the people who open a share link."""

from __future__ import annotations

import re

# An absolute path: a slash that does not follow a letter, digit, dot, colon, slash or "<"
# (so not the middle of a URL, a fraction, "and/or" or a closing tag), then path segments.
_ABSOLUTE_PATH_RE = re.compile(r"(?<![\w.:/~<-])/(?:[\w.@+=,-]+/)*([\w.@+=,-]+)/?")


def hide_paths(text: str, *, root: str) -> str:
    """``text`` with the chat's working directory made relative and any other absolute path
    cut to its last name (``…/name``), so a shared page tells nothing of the server's folders."""
    if not text:
        return text
    root = root.rstrip("/")
    if root:
        # The folder itself becomes ".", a path inside it relative; "/srv/work2" is not inside "/srv/work".
        text = re.sub(re.escape(root) + r"(/|(?![\w-]))", lambda match: "" if match.group(1) else ".", text)
    return _ABSOLUTE_PATH_RE.sub(lambda match: "…/" + match.group(1), text)
