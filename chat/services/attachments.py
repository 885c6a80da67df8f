"""Files attached to a message: saved in the chat's working directory, images also sent as images.

A file lands in ``<workdir>/attachments/`` under a name made here from the uploaded one (only
letters, digits, ``.``, ``_`` and ``-``; never a path), so it cannot land anywhere else. The agent
can write in the working directory and might have put a symbolic link where the folder or a
file is: the server reaches both through :mod:`drivers.safefs` (from the working directory, no
link followed at any step, only regular files read), so it never writes or reads through one.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum

from drivers import safefs

from ..models import Attachment, Session

FOLDER = "attachments"
NAME_CHARS = 80
MAX_FILES = 10
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
# The Messages API refuses larger images.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
CHUNK = 64 * 1024


class AttachmentRefused(Exception):
    """A file that cannot be attached; the text says why and what to do."""


@dataclass(frozen=True)
class Saved:
    path: str  # relative to the working directory, e.g. "attachments/report.txt"
    size: int

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def is_image(self) -> bool:
        """An image the model will see (a larger one is only saved and named)."""
        return image_type(self.path) is not None and self.size <= MAX_IMAGE_BYTES

    @property
    def image_too_large(self) -> bool:
        return image_type(self.path) is not None and self.size > MAX_IMAGE_BYTES


def max_bytes() -> int:
    return int(settings.CLAUDE_MAX_ATTACHMENT_MB * 1024 * 1024)


def member_max_bytes() -> int:
    return int(settings.CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER * 1024 * 1024)


def stored_bytes(*, owner_id: int) -> int:
    """What a member's attachments take, as uploaded: a sum over their rows, not a walk of the disk."""
    total = Attachment.objects.filter(owner_id=owner_id).aggregate(total=Sum("size"))["total"]
    return int(total or 0)


def _over_quota(name: str, used: int, size: int) -> AttachmentRefused:
    return AttachmentRefused(
        f"“{name}” was not attached: your attachments already take {_size_text(used)} of the "
        f"{_size_text(member_max_bytes())} a member may store (CLAUDE_MAX_ATTACHMENTS_MB_PER_MEMBER), and its "
        f"{_size_text(size)} would go over that. Delete chats you no longer need (their attached files go with "
        "them), or ask an admin to raise the limit."
    )


def safe_name(uploaded: str) -> str:
    """A file name from an uploaded one: its last part only, odd characters replaced, never hidden."""
    last = re.split(r"[\\/]", uploaded or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip(".-_")
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    ext = ext[:10]
    stem = stem[: NAME_CHARS - len(ext) - 1].strip(".-_") or "file"
    return f"{stem}.{ext}" if ext else stem


def image_type(path: str) -> str | None:
    return IMAGE_TYPES.get(PurePosixPath(path).suffix.lower())


def _size_text(size: float) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} KB"


@contextlib.contextmanager
def _folder(session: Session, *, create: bool) -> Iterator[int]:
    """The attachments folder of the chat, opened without following a link."""
    try:
        with safefs.folder(session.workdir, FOLDER, create=create, mode=0o755) as fd:
            yield fd
    except (safefs.LinkRefused, safefs.NotAFolder):
        raise AttachmentRefused(
            f"“{FOLDER}” in the working directory is not a plain folder (the agent may have "
            "replaced it). Remove or rename it, then attach the file again."
        ) from None


def save(*, session: Session, name: str, data: IO[bytes] | Iterable[bytes]) -> Saved:
    """Save one uploaded file into the chat's working directory; refused over the size limit."""
    if session.kind != Session.Kind.CHAT or session.is_archived:
        raise AttachmentRefused("Files can only be attached to an open chat of your own.")
    limit = max_bytes()
    used = stored_bytes(owner_id=session.owner_id)
    room = member_max_bytes() - used
    base = safe_name(name)
    with _folder(session, create=True) as folder:
        out, final = _create_unique(folder, base)
        size = 0
        try:
            with out:
                for chunk in _chunks(data):
                    size += len(chunk)
                    if size > limit:
                        raise AttachmentRefused(
                            f"“{name}” is larger than {_size_text(limit)}, the limit for an "
                            "attachment (CLAUDE_MAX_ATTACHMENT_MB). Attach a smaller file."
                        )
                    if size > room:
                        raise _over_quota(name, used, size)
                    out.write(chunk)
            _record(session, path=f"{FOLDER}/{final}", name=name, size=size)
        except BaseException:
            with contextlib.suppress(OSError):
                safefs.remove_file(folder, final)
            raise
    return Saved(path=f"{FOLDER}/{final}", size=size)


def _record(session: Session, *, path: str, name: str, size: int) -> None:
    """Count the saved file against its member's storage, checked again under a lock of the member: two
    uploads at once must not both take the last room."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=session.owner_id).first()
        used = stored_bytes(owner_id=session.owner_id)
        if used + size > member_max_bytes():
            raise _over_quota(name, used, size)
        Attachment.objects.create(session=session, owner_id=session.owner_id, path=path, size=size)


def stored_paths(*, session: Session) -> list[str]:
    """The files attached to this chat (to be removed with it)."""
    return list(Attachment.objects.filter(session=session).values_list("path", flat=True))


def _chunks(data: IO[bytes] | Iterable[bytes]) -> Iterable[bytes]:
    read = getattr(data, "read", None)
    if read is None:
        yield from data
        return
    while chunk := read(CHUNK):
        yield chunk


def _create_unique(folder: int, base: str) -> tuple[io.BufferedRandom, str]:
    """Create the file under ``base`` or, if taken, ``stem-2.ext``, ``stem-3.ext``, ..."""
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    for n in range(1, 1000):
        candidate = base if n == 1 else (f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}")
        try:
            return safefs.create(folder, candidate, mode=0o644), candidate
        except (FileExistsError, safefs.LinkRefused):  # a link there is taken too, and never written through
            continue
    raise AttachmentRefused(
        f"Too many files named like “{base}” are attached already. Rename the file and attach it again."
    )


def validate(*, session: Session, paths: object) -> list[str]:
    """The attachments a message names: files of this chat's attachments folder that exist."""
    if paths in (None, "", []):
        return []
    items = [paths] if isinstance(paths, str) else paths
    if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
        raise AttachmentRefused("The server could not read the attached files; reload the page and attach them again.")
    if len(items) > MAX_FILES:
        raise AttachmentRefused(
            f"{len(items)} files are attached; the limit is {MAX_FILES} a message. Send them in parts."
        )
    found: list[str] = []
    for path in dict.fromkeys(items):
        name = path.removeprefix(f"{FOLDER}/")
        if name != safe_name(name) or not _is_file(session, name):
            raise AttachmentRefused(
                f"The attached file “{path}” is no longer in the chat's working directory. Attach it again."
            )
        found.append(f"{FOLDER}/{name}")
    return found


def _is_file(session: Session, name: str) -> bool:
    """Whether the attachments folder holds a regular file of that name (folder and file checked
    without following links)."""
    try:
        safefs.stat_file(session.workdir, f"{FOLDER}/{name}")
    except OSError:
        return False
    return True


def remove(*, session: Session, path: str) -> None:
    """Remove an attached file (a message that was refused leaves none behind)."""
    name = path.removeprefix(f"{FOLDER}/")
    if name != safe_name(name):
        return
    with contextlib.suppress(OSError):
        safefs.remove_file(session.workdir, f"{FOLDER}/{name}")


def note(paths: list[str]) -> str:
    """What the agent reads about the attached files, after the message."""
    if not paths:
        return ""
    return "\n\n(Attached files, saved in the working directory: " + ", ".join(paths) + ")"


def image_blocks(*, session: Session, paths: list[str]) -> list[dict[str, Any]]:
    """The attached images as the Messages API's base64 image blocks (others are only named)."""
    blocks: list[dict[str, Any]] = []
    for path in paths:
        media = image_type(path)
        name = path.removeprefix(f"{FOLDER}/")
        if media is None or name != safe_name(name):
            continue
        data = _read_image(session, name)
        if data is not None:
            blocks.append(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": media, "data": base64.b64encode(data).decode("ascii")},
                }
            )
    return blocks


def _read_image(session: Session, name: str) -> bytes | None:
    """The image's bytes, if it is a regular file reached without links and not too large for the
    model; else None (a refusal is logged)."""
    try:
        data = safefs.read_bytes(session.workdir, f"{FOLDER}/{name}", limit=MAX_IMAGE_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_IMAGE_BYTES else None
