"""Local and cluster mode are one behaviour: the turn, stop, prompt, task and recovery tests run again on
the cluster engine (``CLAUDE_ENGINE=cluster``: PostgreSQL, Redis, an engine node serving in the test
process; the ``rt`` fixture builds it), not as a second copy of the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.cluster import fresh_database

ROOT = Path(__file__).resolve().parents[2]
SAME_TESTS = [
    "tests/chat/services/test_turns.py",
    "tests/chat/services/test_permissions.py",
    "tests/chat/services/test_recovery.py",
    "tests/tasks/services/test_runs.py",
    "tests/tasks/services/test_checks.py",
]

# Fails on the local engine as well, at the commit cluster mode started from (the fake CLI's stopped
# turn reports no streamed tokens): not a difference between the engines.
KNOWN_FAILING = [
    "--deselect",
    "tests/chat/services/test_turns.py::test_stop_ends_the_turn_and_the_next_message_still_works",
]


def test_the_turn_stop_prompt_task_and_recovery_tests_pass_on_the_cluster_engine(postgres_url, redis_url):
    if settings.CLAUDE_ENGINE == "cluster":
        pytest.skip("this is the run on the cluster engine")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *SAME_TESTS, *KNOWN_FAILING],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": fresh_database(postgres_url),
            "REDIS_URL": redis_url,
            "CLAUDE_ENGINE": "cluster",
            "CLAUDE_NODE_HEARTBEAT": "0.5",
            # The engine's fence would end the test process if its loop stalled this long.
            "CLAUDE_NODE_DEAD_AFTER": "120",
        },
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
