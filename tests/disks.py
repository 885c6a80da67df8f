"""Small real file systems (tmpfs) for tests of a full disk; mounted in a test's own folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(folder: Path, *, size: str = "4m", owner: tuple[int, int] | None = None) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (made if missing) until the block ends. Skips the
    test where this process may not mount (not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (f",uid={owner[0]},gid={owner[1]}" if owner else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; the file that does it."""
    filler = folder / "filler"
    with filler.open("ab", buffering=0) as out:
        for chunk in (65536, 512):  # then the last blocks, smaller than a chunk
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    assert os.statvfs(folder).f_bavail == 0, "the file system is not full"
    return filler
