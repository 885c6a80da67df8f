"""The files of a workspace as the page reads them: a folder one level at a time, a file as the
page shows it, a download. The member's changes (upload, new file or folder, rename, delete, save)
are in :mod:`.edits`, on the refusals, versions and trusted root defined here.

The folder is one an agent writes, so everything in it may be a link it made (to the server's
secret key, its database, another member's folder) or a FIFO: every name is reached from the
workspace's trusted base through :mod:`drivers.safefs`, one component at a time, never following a
link. A link is listed as a link with its target's text and is never read, downloaded, zipped,
renamed through or written through (renaming or deleting one acts on the link itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import mimetypes
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

from chat.markup import render_markdown
from chat.services.attachments import IMAGE_TYPES  # raster images only: an SVG may carry script
from drivers import safefs

from ..selectors import Place
from .names import BadName, check_path, join

# Entries of one level shown at once; the rest is counted ("N more"): a folder of 100,000 files
# lists in one request without sending them all.
LEVEL_LIMIT = 500
# Text shown of a file (the rest is offered as a download), highlighted up to a smaller size
# (colouring costs far more than reading), editable if it is whole and UTF-8.
SHOWN_BYTES = 2 * 1024 * 1024
HIGHLIGHT_BYTES = 256 * 1024
MARKDOWN = (".md", ".markdown")
_FORMATTER = HtmlFormatter(nowrap=True)
_CHUNK = 1 << 20


class FileRefused(Exception):
    """What was asked cannot be done to this file; the text says what happened and what to do."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Version:
    """What a file was when the page opened it: a save is refused if it differs now."""

    mtime_ns: int
    size: int
    sha256: str

    @classmethod
    def of_form(cls, form: Mapping[str, str]) -> Version:
        """The version an editor's form sent back (``mtime_ns``, ``size``, ``sha256``); ValueError if it lacks it."""
        return cls(
            mtime_ns=int(form.get("mtime_ns", "")), size=int(form.get("size", "")), sha256=form.get("sha256", "")
        )


@dataclass(frozen=True)
class Item:
    name: str
    path: str
    kind: str  # folder, file, link, other
    size: int = 0
    target: str = ""  # a link's text, never followed
    ignored: bool = False  # .git, or ignored by git: folded on the page

    @property
    def folded(self) -> bool:
        return self.ignored


@dataclass(frozen=True)
class Listing:
    path: str
    items: list[Item]
    more: int
    total: int

    @property
    def unfolded(self) -> list[Item]:
        return [item for item in self.items if not item.folded]

    @property
    def folded(self) -> list[Item]:
        return [item for item in self.items if item.folded]

    @property
    def crumbs(self) -> list[tuple[str, str]]:
        """(name, path) of each folder on the way, for the page's trail."""
        parts = self.path.split("/") if self.path else []
        return [(part, "/".join(parts[: n + 1])) for n, part in enumerate(parts)]


@dataclass(frozen=True)
class Opened:
    path: str
    kind: str  # text, markdown, image, binary, link, folder, other
    size: int
    version: Version | None = None
    text: str = ""
    html: str = ""  # highlighted code or rendered Markdown (safe)
    target: str = ""
    cut: bool = False  # only the first SHOWN_BYTES are shown
    media_type: str = ""

    @property
    def editable(self) -> bool:
        return self.kind in ("text", "markdown") and not self.cut


def _refusal(exc: OSError, path: str) -> FileRefused:
    """An OSError of safefs or the system, in a member's words (never the server's paths)."""
    shown = path or "the folder"
    if isinstance(exc, safefs.LinkRefused):
        return FileRefused(f"{shown} is (or lies behind) a symbolic link: links are shown, never opened.")
    if isinstance(exc, safefs.NotAFile):
        return FileRefused(f"{shown} is not a regular file.")
    if isinstance(exc, safefs.NotAFolder):
        return FileRefused(f"{shown} is not a folder.")
    if isinstance(exc, safefs.NameRefused):
        return FileRefused(f"{shown} is not a name in this folder.")
    if isinstance(exc, FileNotFoundError):
        return FileRefused(f"{shown} is not there (any more): reload the folder.", status=404)
    if isinstance(exc, FileExistsError):
        return FileRefused(f"{shown} exists already: pick another name, or delete it first.", status=409)
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return FileRefused(f"{shown} is not what it was: reload the folder.", status=409)
    if isinstance(exc, PermissionError):
        return FileRefused(f"{shown} may not be changed (its permissions refuse it).", status=403)
    return FileRefused(f"{shown} could not be reached: {exc.strerror or exc}.", status=500)


@contextlib.contextmanager
def _root(place: Place) -> Iterator[int]:
    """The workspace's folder as a descriptor, reached from its trusted base without a link."""
    try:
        with safefs.folder(place.base, place.prefix) as fd:
            yield fd
    except FileNotFoundError:
        raise FileRefused("This folder does not exist yet: it is made when its first turn runs.", status=404) from None
    except safefs.UnsafePath:
        raise FileRefused(
            "This workspace's folder is a link or not a folder any more: ask an admin to look at it."
        ) from None


def _checked(path: str) -> str:
    try:
        return check_path(path)
    except BadName as exc:
        raise FileRefused(str(exc)) from None


def listing(*, place: Place, path: str = "", limit: int = LEVEL_LIMIT) -> Listing:
    """One level of the folder ``path``: folders first, then files, by name; at most ``limit`` of
    them (the rest counted). Folded: ``.git`` (see :func:`with_ignored` for what git ignores)."""
    path = _checked(path)
    with _root(place) as root:
        try:
            with safefs.folder(root, path) as fd:
                with os.scandir(fd) as scan:
                    # d_type from the listing itself, one call per entry: no stat of 100,000 files.
                    keys = [(not entry.is_dir(follow_symlinks=False), entry.name) for entry in scan]
                # The first ``limit`` without sorting the rest (a folder of 100,000 shows 500).
                shown = sorted(keys) if len(keys) <= limit else heapq.nsmallest(limit, keys)
                items = [_item(fd, path, name) for _rank, name in shown]
        except OSError as exc:
            raise _refusal(exc, path) from None
    return Listing(path=path, items=items, more=len(keys) - len(shown), total=len(keys))


def with_ignored(found: Listing, ignored: set[str]) -> Listing:
    """``found`` with the names git ignores folded."""
    items = [dataclasses.replace(item, ignored=True) if item.name in ignored else item for item in found.items]
    return dataclasses.replace(found, items=items)


def _item(fd: int, folder: str, name: str) -> Item:
    """One shown entry, as it is (a link's own text, never what it leads to)."""
    kind, size, target = "other", 0, ""
    try:
        found = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(found.st_mode):
            kind, target = "link", os.readlink(name, dir_fd=fd)
        elif stat.S_ISDIR(found.st_mode):
            kind = "folder"
        elif stat.S_ISREG(found.st_mode):
            kind, size = "file", found.st_size
    except OSError:
        pass  # gone meanwhile: listed as a special file, and opening it says it is gone
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 (an agent can make such a name): shown with replacement
        # characters, and with no path, as no page can send such a name back.
        shown = os.fsencode(name).decode("utf-8", "replace")
        return Item(name=shown, path="", kind=kind, size=size, target=target)
    target = os.fsencode(target).decode("utf-8", "replace")
    return Item(name=name, path=join(folder, name), kind=kind, size=size, target=target, ignored=name == ".git")


def version_of(data: bytes, found: os.stat_result) -> Version:
    return Version(mtime_ns=found.st_mtime_ns, size=found.st_size, sha256=hashlib.sha256(data).hexdigest())


def open_file(*, place: Place, path: str) -> Opened:
    """The file ``path`` as the page shows it: text (highlighted), Markdown (rendered), an image, a
    binary (a download), or a link (its text, never read)."""
    path = _checked(path)
    if not path:
        raise FileRefused("Pick a file in the folder.")
    with _root(place) as root:
        try:
            found = safefs.lstat(root, path)
            if stat.S_ISLNK(found.st_mode):
                return Opened(path=path, kind="link", size=0, target=_link_text(root, path))
            if stat.S_ISDIR(found.st_mode):
                return Opened(path=path, kind="folder", size=0)
            if not stat.S_ISREG(found.st_mode):
                return Opened(path=path, kind="other", size=found.st_size)
            fd, found = safefs.open_fd(root, path)
            try:
                data = safefs.read_fd(fd, size=found.st_size, limit=SHOWN_BYTES + 1)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _refusal(exc, path) from None
    cut = len(data) > SHOWN_BYTES
    version = version_of(data, found) if not cut else None
    suffix = os.path.splitext(path)[1].lower()
    if suffix in IMAGE_TYPES:
        return Opened(path=path, kind="image", size=found.st_size, media_type=IMAGE_TYPES[suffix], version=version)
    data = data[:SHOWN_BYTES]
    text = _text_of(data, cut=cut)
    if text is None:
        return Opened(path=path, kind="binary", size=found.st_size)
    if suffix in MARKDOWN:
        html = render_markdown(text) if not cut else ""
        return Opened(path=path, kind="markdown", size=found.st_size, text=text, html=html, cut=cut, version=version)
    return Opened(
        path=path, kind="text", size=found.st_size, text=text, html=_highlighted(path, text), cut=cut, version=version
    )


def _link_text(root: int, path: str) -> str:
    folder, _, name = path.rpartition("/")
    with safefs.folder(root, folder) as fd:
        return os.fsencode(os.readlink(name, dir_fd=fd)).decode("utf-8", "replace")


def _text_of(data: bytes, *, cut: bool) -> str | None:
    """The bytes as text, or None for a binary (a NUL early on, or not UTF-8)."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 4:
            return data[: exc.start].decode("utf-8")  # cut inside a character
        return None


def _highlighted(path: str, text: str) -> str:
    if len(text) > HIGHLIGHT_BYTES:
        return ""
    try:
        lexer = get_lexer_for_filename(os.path.basename(path), stripnl=False, ensurenl=False)
    except ClassNotFound:
        return ""
    return highlight(text, lexer, _FORMATTER)


def download(*, place: Place, path: str) -> tuple[IO[bytes], int, str]:
    """An open regular file (the caller closes it), its size and its media type. A link, a FIFO or a
    folder is refused (a folder is downloaded with :func:`zipped`)."""
    path = _checked(path)
    with _root(place) as root:
        try:
            fd, found = safefs.open_fd(root, path)
        except OSError as exc:
            raise _refusal(exc, path) from None
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return os.fdopen(fd, "rb"), found.st_size, media


def image(*, place: Place, path: str) -> tuple[IO[bytes], str]:
    """A raster image to show inline (only the types of IMAGE_TYPES)."""
    media = IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
    if media is None:
        raise FileRefused("Only PNG, JPEG, GIF and WebP images are shown; download the file instead.")
    handle, _size, _media = download(place=place, path=path)
    return handle, media
