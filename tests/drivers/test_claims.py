"""Which task holds which file (drivers/claims.py): the JSON store shared by the app and the hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers import claims
from drivers.claims import Holder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return claims.store_path(tmp_path / "state", tmp_path / "repo")


def test_the_first_task_holds_a_file_until_it_is_released(store: Path) -> None:
    assert claims.claim(store, task=1, paths=["a.txt"]) == []
    assert claims.claim(store, task=2, paths=["a.txt"]) == [Holder(path="a.txt", task=1, title="")]
    assert claims.claim(store, task=1, paths=["a.txt"]) == []  # its own file: no conflict
    assert claims.held_by(store, task=1) == ["a.txt"]
    assert claims.held_by(store, task=2) == []

    claims.release(store, task=1)
    assert claims.held_by(store, task=1) == []
    assert claims.claim(store, task=2, paths=["a.txt"]) == []
    assert claims.held_by(store, task=2) == ["a.txt"]
    assert claims.claim(store, task=1, paths=["a.txt"]) == [Holder(path="a.txt", task=2, title="")]


def test_a_conflict_names_the_holder_by_its_title(store: Path) -> None:
    claims.register(store, task=1, title="Add the login page")
    claims.claim(store, task=1, paths=["login.py"])
    assert claims.claim(store, task=2, paths=["login.py"]) == [
        Holder(path="login.py", task=1, title="Add the login page")
    ]
    claims.register(store, task=1, title="Add the login page (renamed)")
    assert claims.claim(store, task=2, paths=["login.py"])[0].title == "Add the login page (renamed)"


def test_free_paths_are_claimed_even_when_others_conflict(store: Path) -> None:
    claims.claim(store, task=1, paths=["a.txt"])
    conflicts = claims.claim(store, task=2, paths=["a.txt", "b.txt", "dir/c.txt"])
    assert conflicts == [Holder(path="a.txt", task=1, title="")]
    assert claims.held_by(store, task=2) == ["b.txt", "dir/c.txt"]
    assert claims.held_by(store, task=1) == ["a.txt"]


def test_block_records_what_was_refused_once(store: Path) -> None:
    claims.register(store, task=1, title="Holder")
    claims.claim(store, task=1, paths=["a.txt", "b.txt"])
    assert not claims.peek_blocked(store, task=2)

    claims.claim(store, task=2, paths=["a.txt"], block=True)
    claims.claim(store, task=2, paths=["a.txt"], block=True)  # refused again: still one entry
    claims.claim(store, task=2, paths=["b.txt", "a.txt"], block=True)
    assert claims.peek_blocked(store, task=2)
    assert claims.peek_blocked(store, task=2)  # peeking keeps them
    assert claims.take_blocked(store, task=2) == [Holder("a.txt", 1, "Holder"), Holder("b.txt", 1, "Holder")]


def test_without_block_nothing_is_recorded(store: Path) -> None:
    claims.claim(store, task=1, paths=["a.txt"])
    assert claims.claim(store, task=2, paths=["a.txt"])
    assert not claims.peek_blocked(store, task=2)
    assert claims.take_blocked(store, task=2) == []


def test_take_blocked_pops_them(store: Path) -> None:
    claims.claim(store, task=1, paths=["a.txt"])
    claims.claim(store, task=2, paths=["a.txt"], block=True)
    claims.claim(store, task=3, paths=["a.txt"], block=True)

    assert claims.take_blocked(store, task=2) == [Holder("a.txt", 1, "")]
    assert claims.take_blocked(store, task=2) == []
    assert not claims.peek_blocked(store, task=2)
    assert claims.peek_blocked(store, task=3)  # another task's entries stay


def test_release_frees_only_that_task_s_files_and_forgets_its_blocks_and_title(store: Path) -> None:
    claims.register(store, task=1, title="One")
    claims.register(store, task=2, title="Two")
    claims.claim(store, task=1, paths=["a.txt", "b.txt"])
    claims.claim(store, task=2, paths=["c.txt"])
    claims.claim(store, task=1, paths=["c.txt"], block=True)
    claims.claim(store, task=2, paths=["a.txt"], block=True)

    claims.release(store, task=1)
    assert claims.held_by(store, task=1) == []
    assert claims.held_by(store, task=2) == ["c.txt"]
    assert not claims.peek_blocked(store, task=1)
    assert claims.take_blocked(store, task=2) == [Holder("a.txt", 1, "One")]  # what blocked it is still told
    assert claims.claim(store, task=3, paths=["c.txt"]) == [Holder("c.txt", 2, "Two")]
    claims.release(store, task=99)  # nothing held: nothing happens
    assert claims.held_by(store, task=2) == ["c.txt"]


def test_store_path_is_one_per_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    (tmp_path / "repo").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)

    one = claims.store_path(state, tmp_path / "repo")
    # In a folder of its own: a task's sandbox is shown that folder and no other repository's store.
    assert one.parent.parent == state and one.name == "claims.json"
    assert claims.store_path(state, tmp_path / "other") != one
    assert claims.store_path(state, "repo") == one  # relative
    assert claims.store_path(state, tmp_path / "link") == one  # through a symlink
    assert claims.store_path(state, f"{tmp_path}/other/../repo/") == one


def test_stores_of_two_repositories_are_independent(tmp_path: Path) -> None:
    first = claims.store_path(tmp_path / "state", tmp_path / "one")
    second = claims.store_path(tmp_path / "state", tmp_path / "two")
    claims.claim(first, task=1, paths=["a.txt"])
    assert claims.claim(second, task=2, paths=["a.txt"]) == []


def test_the_store_is_json_written_whole_with_nothing_left_behind(store: Path) -> None:
    claims.register(store, task=1, title="Ünïcode « title »")
    claims.claim(store, task=1, paths=["dir/ü.txt"])
    claims.claim(store, task=2, paths=["dir/ü.txt"], block=True)
    data = json.loads(store.read_text())
    assert data["claims"] == {"dir/ü.txt": {"task": 1}}
    assert data["titles"] == {"1": "Ünïcode « title »"}
    assert data["blocked"] == {"2": [{"path": "dir/ü.txt", "task": 1, "title": "Ünïcode « title »"}]}
    assert sorted(p.name for p in store.parent.iterdir()) == sorted([store.name, store.with_suffix(".lock").name])


def test_an_unreadable_store_counts_as_empty(store: Path) -> None:
    store.parent.mkdir(parents=True)
    store.write_text("{ not json")
    assert claims.held_by(store, task=1) == []
    assert claims.claim(store, task=1, paths=["a.txt"]) == []
    assert claims.held_by(store, task=1) == ["a.txt"]


WORKER = """
import sys, time
from pathlib import Path
from drivers import claims

store, task, go, count = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    claims.claim(store, task=task, paths=[f"task{task}/file{i}.txt"])
    claims.claim(store, task=task, paths=["everyone.txt"], block=True)
"""


def test_concurrent_claims_from_several_processes_lose_no_update(store: Path, tmp_path: Path) -> None:
    """4 processes x 50 claims of their own paths (and one path they all want) at the same moment."""
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(store), str(task), str(go), "50"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for task in range(1, 5)
    ]
    time.sleep(0.2)  # let them all start, then release them together
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err

    for task in range(1, 5):
        mine = [p for p in claims.held_by(store, task=task) if p != "everyone.txt"]
        assert mine == sorted(f"task{task}/file{i}.txt" for i in range(50))
    winners = [task for task in range(1, 5) if "everyone.txt" in claims.held_by(store, task=task)]
    assert len(winners) == 1
    for task in range(1, 5):
        expected = [] if task in winners else [Holder("everyone.txt", winners[0], "")]
        assert claims.take_blocked(store, task=task) == expected
