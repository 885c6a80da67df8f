"""``scripts/manage``: the README's management commands work as written, from any folder."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT


def test_it_runs_a_command_with_the_projects_python_from_another_folder(tmp_path: Path) -> None:
    # No virtualenv on PATH: the wrapper, not the caller's python, picks the interpreter.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "APP_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [str(ROOT / "scripts" / "manage"), "help", "api_token"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: manage.py api_token" in done.stdout


def test_the_readme_uses_it_for_every_management_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/manage api_token alice" in readme
    assert ".venv/bin/python manage.py" not in readme and "`python manage.py" not in readme
    assert os.access(ROOT / "scripts" / "manage", os.X_OK)
