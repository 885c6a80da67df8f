"""A level of the file tree as the page shows it: the folder's entries, with what git ignores folded."""

from __future__ import annotations

from ..selectors import Place
from .changes import ignored_names
from .files import Listing, listing, with_ignored


async def level(*, place: Place, path: str = "") -> Listing:
    found = listing(place=place, path=path)
    ignored = await ignored_names(place=place, folder=found.path, names=[item.name for item in found.items])
    return with_ignored(found, ignored) if ignored else found
