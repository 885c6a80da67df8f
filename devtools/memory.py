"""How much memory processes use, as the benchmarks report it (from /proc; Linux only)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def rss_and_pss_kb(pids: Iterable[int]) -> tuple[int, int]:
    """The summed RSS and PSS (kB) of ``pids``; a process gone meanwhile counts nothing."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss
