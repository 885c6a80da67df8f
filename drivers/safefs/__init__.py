"""Files beneath a trusted folder, reached without following a link at any step.

An agent writes in its working directory and in its chat's CLI config folder, so anything there
may be a symbolic link it made (to the server's secret key, its database, another member's
files), a FIFO that blocks a reader for ever, or a folder where a file belongs. Every function
here takes a *root* the server trusts (a folder it made or was configured with, as a path or an
open folder descriptor: links in the root's own path are the server's and are followed) and a
*name* beneath it (relative, no ``..``). The name is walked one component at a time from the
root's descriptor, each folder opened with ``O_NOFOLLOW | O_DIRECTORY`` (or all of them in one
``openat2`` call with no link allowed, where the system has it), the last component with
``O_NOFOLLOW`` too, and what was opened is checked with ``fstat`` (so a swap after a check gains
nothing). A link anywhere is refused with :class:`LinkRefused`, a final name of the wrong kind
with :class:`NotAFile` or :class:`NotAFolder`, a name that is absolute or climbs with ``..``
with :class:`NameRefused`; all are :class:`UnsafePath`, an ``OSError`` whose text names the path
and what it is. Files are created only new (``O_CREAT | O_EXCL | O_NOFOLLOW``) or by a rename
inside the same folder descriptor, so nothing is ever written through a link.

``errors`` holds the refusals, ``walk`` the names and the walk (and :func:`folder`, a descriptor
to work in with ``dir_fd``), ``files`` what is done with files. No Django imports.
"""

from .errors import LinkRefused, NameRefused, NotAFile, NotAFolder, UnsafePath, kind_of
from .files import (
    Entry,
    create,
    entries,
    lstat,
    open_fd,
    open_read,
    read_bytes,
    read_fd,
    remove_file,
    remove_tree,
    replacing,
    stat_file,
)
from .walk import Root, StrPath, folder, make_folders, name_beneath, parts_of

__all__ = [
    "Entry",
    "LinkRefused",
    "NameRefused",
    "NotAFile",
    "NotAFolder",
    "Root",
    "StrPath",
    "UnsafePath",
    "create",
    "entries",
    "folder",
    "kind_of",
    "lstat",
    "make_folders",
    "name_beneath",
    "open_fd",
    "open_read",
    "parts_of",
    "read_bytes",
    "read_fd",
    "remove_file",
    "remove_tree",
    "replacing",
    "stat_file",
]
