"""Tests write only in temporary folders: the run fails, naming them, if the checkout gained a file.

The settings keep every data folder out of the checkout (tests/settings.py); this catches the rest
(a test that writes next to the code, a server or command it starts with a folder of its own).
Under xdist the process that runs the workers compares, once, before and after all of them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Made by the tools that run before the tests (scripts/test) or by pytest itself.
_TOOL_FILES = [".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"]
_checkout_before = pytest.StashKey[set[str] | None]()


def _untracked_files() -> set[str] | None:
    """The checkout's files that git does not track, ignored ones included; None outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "--others", "-z", *(f"--exclude={name}" for name in _TOOL_FILES)],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode:
        return None
    return {name for name in listed.stdout.decode(errors="replace").split("\0") if name}


def _controls_the_run(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # not an xdist worker: the process that runs them, or the only one


def pytest_sessionstart(session: pytest.Session) -> None:
    if _controls_the_run(session.config):
        session.config.stash[_checkout_before] = _untracked_files()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _controls_the_run(session.config):
        return
    before = session.config.stash.get(_checkout_before, None)
    after = _untracked_files()
    if before is None or after is None:
        return
    gained = sorted(after - before)
    if gained:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [
            f"The tests wrote {len(gained)} file(s) into the checkout {ROOT}; tests write only in temporary",
            "folders (tmp_path). Find the test that made them, make it write under tmp_path, then delete them:",
            *(f"  {name}" for name in gained[:50]),
        ]
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_sep("=", "the checkout gained files", red=True, bold=True)
            for line in lines:
                reporter.write_line(line, red=True)
        else:
            print("\n".join(lines), file=sys.stderr)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
