"""Names a member types or a page sends for files of a workspace, checked before anything is touched.

A path is shown and sent relative to the workspace's folder (``src/app.py``); the server never
takes an absolute path, a ``..``, a NUL or a control character, nor a name longer than the file
system takes, and says which and why.
"""

from __future__ import annotations

MAX_NAME_BYTES = 255
MAX_PATH_CHARS = 4096


class BadName(ValueError):
    """A name or path refused before use; the text says what is wrong and what to do."""


def check_name(name: str) -> str:
    """One file or folder name (no ``/``), as typed."""
    shown = repr(name[:80])
    if not name or name in (".", ".."):
        raise BadName(f"{shown} is not a name: type a file or folder name such as notes.txt.")
    if "/" in name:
        raise BadName(f"{shown} holds a '/': a name is one file or folder, without folders in it.")
    if "\0" in name or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise BadName(f"{shown} holds a NUL or control character: use letters, digits and punctuation.")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadName(f"{shown} is not valid text: retype it.") from None
    if size > MAX_NAME_BYTES:
        raise BadName(f"That name is {size} bytes long; a name may have at most {MAX_NAME_BYTES}: shorten it.")
    return name


def check_path(path: str) -> str:
    """A path relative to the workspace's folder ("" is the folder itself), each part a good name."""
    if len(path) > MAX_PATH_CHARS:
        raise BadName(f"That path is longer than {MAX_PATH_CHARS} characters.")
    if path.startswith("/"):
        raise BadName("Paths are relative to the workspace's folder: leave out the leading '/'.")
    parts = [part for part in path.split("/") if part and part != "."]
    for part in parts:
        if part == "..":
            raise BadName("A path may not climb out of the folder with '..'.")
        check_name(part)
    return "/".join(parts)


def join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name
