"""Finding and ending a process and everything it started (drivers/claude/proctree.py), on real
processes: a shell that starts a child in its group and one in a session of its own (as the CLI's
Bash tool does)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.claude import is_process_of, kill_group, process_start_time, proctree
from tests.processes import assert_all_gone, running

# The shell writes its children's pids, then waits for them.
TREE = """\
sleep 1000 & echo $! > "$DIR/in-group"
setsid sleep 1000 & echo $! > "$DIR/own-session"
wait
"""


def _leads_a_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except OSError:
        return False


class Tree:
    def __init__(self, folder: Path, *, new_session: bool) -> None:
        self.folder = folder
        self.shell = subprocess.Popen(
            ["bash", "-c", TREE], env={**os.environ, "DIR": str(folder)}, start_new_session=new_session
        )
        deadline = time.monotonic() + 10
        while not all((folder / name).is_file() and (folder / name).read_text().strip() for name in self.names):
            assert time.monotonic() < deadline, "the shell did not start its children"
            time.sleep(0.01)
        # $! is known before the child has run setsid: until then it is still in the shell's group.
        while not _leads_a_session(self.children[1]):
            assert time.monotonic() < deadline, "the child did not start a session of its own"
            time.sleep(0.01)

    names = ("in-group", "own-session")

    @property
    def children(self) -> list[int]:
        return [int((self.folder / name).read_text()) for name in self.names]

    @property
    def pids(self) -> list[int]:
        return [self.shell.pid, *self.children]

    def kill(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.shell.wait()


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[list[Tree]]:
    made: list[Tree] = []
    yield made
    for tree in made:
        tree.kill()


def make(trees: list[Tree], folder: Path, *, new_session: bool) -> Tree:
    folder.mkdir()
    trees.append(Tree(folder, new_session=new_session))
    return trees[-1]


def test_descendants_finds_children_in_other_groups_and_sessions(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=False)
    found = {proc.pid for proc in proctree.descendants(tree.shell.pid)}
    assert found == set(tree.children)
    assert proctree.descendants(tree.children[0]) == []


def test_walking_the_children_files_finds_what_scanning_all_of_proc_finds(trees: list[Tree], tmp_path: Path) -> None:
    # The walk (a few files per process of the tree) stands in for the scan of every process of
    # the machine where the kernel lists children; both see the same tree.
    if not proctree._CHILDREN_FILES:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children files")
    tree = make(trees, tmp_path / "t", new_session=False)
    walked, scanned = proctree._walked(tree.shell.pid), proctree._scanned(tree.shell.pid)
    assert {proc.pid for proc in walked} == set(tree.children)
    assert set(walked) == set(scanned)
    assert proctree._walked(tree.children[0]) == []


def test_end_tree_ends_the_process_and_all_it_started_but_not_its_group(trees: list[Tree], tmp_path: Path) -> None:
    # The shell runs in this test's group, as a live CLI without a group of its own would: only
    # the tree goes, not a bystander of the same group.
    tree = make(trees, tmp_path / "t", new_session=False)
    bystander = make(trees, tmp_path / "b", new_session=False)
    proctree.end_tree(tree.shell.pid, proctree.descendants(tree.shell.pid))
    tree.shell.wait(5)
    assert_all_gone(tree.pids)
    assert all(running(pid) for pid in bystander.pids)


def test_end_tree_reaches_what_was_seen_before_the_process_exited(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=False)
    seen = proctree.descendants(tree.shell.pid)
    tree.shell.kill()
    tree.shell.wait(5)
    # Its children now belong to init: only the earlier sight of them leads to them.
    proctree.end_tree(tree.shell.pid, seen)
    assert_all_gone(tree.children)


def test_end_tree_may_send_a_gentler_signal(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=False)
    proctree.end_tree(tree.shell.pid, proctree.descendants(tree.shell.pid), signal.SIGTERM)
    assert tree.shell.wait(5) == -signal.SIGTERM
    assert_all_gone(tree.pids)


def test_kill_group_ends_the_group_and_what_its_leader_started_elsewhere(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=True)
    assert os.getpgid(tree.shell.pid) == tree.shell.pid
    assert kill_group(tree.shell.pid)
    tree.shell.wait(5)
    assert_all_gone(tree.pids)


def test_kill_group_reaches_a_group_whose_leader_has_exited(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=True)
    tree.shell.kill()
    tree.shell.wait(5)
    in_group, own_session = tree.children
    assert kill_group(tree.shell.pid)
    assert_all_gone([in_group])
    assert running(own_session)  # out of reach once its parent is gone: end_tree's earlier sight is needed


def test_process_start_time_and_is_process_of(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=True)
    sleeper = tree.children[0]
    started = process_start_time(sleeper)
    assert isinstance(started, int) and started > 0
    assert process_start_time(sleeper) == started
    assert is_process_of(sleeper, started=started, command=b"sleep")
    assert is_process_of(sleeper, started=None, command=b"sleep")
    assert not is_process_of(sleeper, started=started + 1, command=b"sleep")  # another process with this pid
    assert not is_process_of(sleeper, started=started, command=b"claude")
    tree.kill()
    assert_all_gone([sleeper])
    assert process_start_time(sleeper) is None
    assert not is_process_of(sleeper, started=started, command=b"sleep")


def test_a_process_that_never_was_has_no_start_time() -> None:
    assert process_start_time(2**22 + 1) is None  # above the kernel's pid_max
    assert proctree.descendants(2**22 + 1) == []
    proctree.end_tree(2**22 + 1, [])  # nothing to do, no error
    assert not kill_group(2**22 + 1)


def test_tracked_groups_are_remembered_until_untracked() -> None:
    proctree.track(123456)
    assert 123456 in proctree.live_groups()
    proctree.untrack(123456)
    assert 123456 not in proctree.live_groups()


async def test_exited_returns_once_the_process_has_exited(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=True)
    waiting = asyncio.create_task(proctree.exited(tree.shell.pid))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    tree.shell.kill()
    async with asyncio.timeout(5):
        await waiting
    await proctree.exited(tree.shell.pid)  # already gone: at once
    await proctree.exited(2**22 + 1)


async def test_kill_leftovers_ends_the_group_once_its_leader_exits(trees: list[Tree], tmp_path: Path) -> None:
    tree = make(trees, tmp_path / "t", new_session=True)
    in_group, _own_session = tree.children
    cleaning = asyncio.create_task(proctree.kill_leftovers(tree.shell.pid))
    await asyncio.sleep(0.1)
    assert running(in_group)
    tree.shell.kill()
    async with asyncio.timeout(5):
        await cleaning
    assert_all_gone([in_group])


# Stands for a sandbox's init: its first child for the CLI, there before the turn; what it starts
# once told to go, for a turn's tools (in its group, and detached in a session of their own).
INIT = """\
sleep 1000 & echo $! > "$DIR/cli"
read -r _ < "$DIR/go"
sleep 1000 & echo $! > "$DIR/in-group"
setsid sleep 1000 & echo $! > "$DIR/own-session"
wait
"""


async def test_end_since_ends_what_started_after_the_snapshot_and_spares_the_rest(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "go")  # the shell waits on it without starting anything
    init = subprocess.Popen(["bash", "-c", INIT], env={**os.environ, "DIR": str(tmp_path)}, start_new_session=True)
    try:
        await _written(tmp_path, "cli")
        before = proctree.snapshot(init.pid)
        cli = int((tmp_path / "cli").read_text())
        assert {pid for pid, _started in before} == {cli}
        (tmp_path / "go").write_text("go\n")
        late = [await _written(tmp_path, name) for name in ("in-group", "own-session")]

        assert await proctree.end_since(init.pid, before) == 2
        assert_all_gone(late)
        assert running(cli) and running(init.pid)
        assert await proctree.end_since(init.pid, before) == 0  # nothing new: nothing to do
    finally:
        proctree.end_tree(init.pid, proctree.descendants(init.pid))
        init.wait()


async def _written(folder: Path, name: str) -> int:
    """The pid a shell wrote into ``folder/name``, once it is there and leads its session if it should."""
    path = folder / name
    async with asyncio.timeout(10):
        while not (path.is_file() and path.read_text().strip()):
            await asyncio.sleep(0.01)
        pid = int(path.read_text())
        # $! is known before the child has run setsid: until then it is still in the shell's group.
        while name == "own-session" and not _leads_a_session(pid):
            await asyncio.sleep(0.01)
    return pid
