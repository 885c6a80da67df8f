"""Where the Claude Code CLI keeps a session's transcript, and what a session id looks like.

No Django imports. The CLI names a session's folder after its working directory with every
character that is not an ASCII letter or digit replaced by ``-``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(value: object) -> bool:
    # fullmatch: "$" would also accept a trailing newline, which would end up in argv and file names.
    return isinstance(value, str) and bool(_UUID_RE.fullmatch(value))


# The CLI cuts longer folder names and appends a hash of the whole path.
PROJECT_DIR_MAX = 200
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _utf16_units(text: str) -> list[int]:
    # The CLI works on JavaScript strings: a character beyond U+FFFF counts as two units.
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def _js_string_hash(units: Sequence[int]) -> int:
    """The CLI's ``(h << 5) - h + charCode | 0`` over a string: a signed 32-bit Java-style hash."""
    h = 0
    for unit in units:
        h = (h * 31 + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if not number:
            return digits


def encode_project_dir(cwd: str | os.PathLike[str]) -> str:
    """The CLI's folder name for a working directory: every character that is not an ASCII letter
    or digit becomes '-' (two for a character beyond U+FFFF); a name over 200 characters is cut
    and gets a hash of the whole path appended."""
    units = _utf16_units(str(cwd))
    encoded = "".join(chr(u) if chr(u).isascii() and chr(u).isalnum() else "-" for u in units)
    if len(encoded) <= PROJECT_DIR_MAX:
        return encoded
    return f"{encoded[:PROJECT_DIR_MAX]}-{_base36(abs(_js_string_hash(units)))}"


def transcript_path(config_dir: str | os.PathLike[str], cwd: str | os.PathLike[str], session_id: str) -> Path:
    """Where the CLI keeps the transcript of a session run in ``cwd``."""
    if not is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    # The CLI names the folder after its process cwd, in which symlinks are already resolved.
    real_cwd = os.path.realpath(cwd)
    return Path(config_dir) / "projects" / encode_project_dir(real_cwd) / f"{session_id.lower()}.jsonl"
