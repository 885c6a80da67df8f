"""What an agent can plant in a ``.git`` it writes, against every git operation of drivers/git/.

Each planted command tries to leave a marker in the server's data folder (which only the server
can reach) and writes, in the repository's own folder, that it ran and as which user. Plain git
run by the server (the code before this change) runs them all; the driver runs none of the ones
its hardening names, and what no list can foresee (a filter driver, a merge driver) runs only in
the sandbox, as the agent's user, where the data folder does not exist.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from drivers import git as g
from drivers.claude.sandbox import AGENT_UID, Sandbox, find_bwrap
from tests.git_plants import NEVER, UNFORESEEN, plant, pwned, ran
from tests.task_helpers import git, init_repo


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """The member's folder (the repository and its worktrees) and the server's data folder."""
    member, data = tmp_path / "member", tmp_path / "data"
    member.mkdir()
    data.mkdir()
    return member, data


def jail_for(folder: Path, state: Path) -> Sandbox:
    return Sandbox(bwrap=find_bwrap(), writable=[folder], readonly=[], state_dir=state, home=folder)


def test_plain_git_run_by_the_server_runs_the_plants(folders, tmp_path: Path) -> None:
    """The plants are live: git as the server ran it before (discovering the .git, its own
    environment) runs them, and they reach the server's data folder."""
    member, data = folders
    repo = init_repo(member / "repo")
    plant(repo, data)
    for round in (1, 2):
        if round == 2:  # without the included configuration, which overrides the hooks folder
            git(repo, "config", "--unset", "include.path")
        (repo / "shared.txt").write_text(f"changed {round}\n")
        for args in (
            ["status"],
            ["diff"],
            ["add", "-A"],
            ["commit", "--no-verify", "-q", "-m", "x"],
            ["worktree", "add", "-q", str(member / f"wt{round}"), "-b", f"t{round}"],
        ):
            subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    reached = pwned(data)
    assert {
        "fsmonitor",
        "included-fsmonitor",
        "external-diff",
        "clean",
        "smudge",
        "gpg",
        "included-hook",
        "hook-post-checkout",
        "hook-reference-transaction",
        "hook-post-index-change",
    } <= reached, reached


async def every_operation(main: g.Repo, member: Path) -> None:
    """What the tasks do with a repository: worktree, status, commits, diffs, merge, rebase,
    conflicts handed to the agent, discard."""
    wt = await g.worktree_add(main, member / ".worktrees" / "1", "auto-claude/1", "main")
    (wt.work_tree / "shared.txt").write_text("the task's line\noriginal\n")  # type: ignore[operator]
    (wt.work_tree / "new.txt").write_text("new\n")  # type: ignore[operator]
    assert sorted(await g.status(wt)) == ["new.txt", "shared.txt"]
    await g.commit_all(wt, "Task work")
    await g.changed_files(main, "main", "auto-claude/1")
    await g.diff(main, "main", "auto-claude/1")
    await g.log(main, "main", "auto-claude/1")
    other = await g.worktree_add(main, member / ".worktrees" / "2", "auto-claude/2", "main")
    (other.work_tree / "shared.txt").write_text("original\nthe other task's line\n")  # type: ignore[operator]
    await g.commit_all(other, "Other task")
    commit = await g.merge_into(main, "main", "auto-claude/1", "Merge task #1: work")
    await g.merge_diff(main, commit)
    await g.find_merge(main, "main", "Merge task #1: ")
    await g.rebase(other, "main")
    await g.merge_in(other, "main")
    await g.unmerged(other)
    await g.merge_abort(other)
    await g.current_branch(main)
    await g.worktree_remove(main, member / ".worktrees" / "1")
    await g.worktree_remove(main, member / ".worktrees" / "2")
    await g.branch_delete(main, "auto-claude/1", force=True)
    await g.branch_delete(main, "auto-claude/2", force=True)


async def test_the_server_s_own_git_runs_none_of_the_plants_the_hardening_names(folders) -> None:
    """A repository no agent can write (a shared project's): git runs as the server, and runs no
    hook, fsmonitor, external diff, textconv, pager, signing program, editor or included hook.
    A filter or merge driver its .git names does run: hence no agent may write that .git."""
    member, data = folders
    repo = init_repo(member / "repo")
    trace = plant(repo, data)
    await every_operation(g.Repo.at(repo), member)
    noted = ran(trace)
    assert not NEVER & set(noted), noted
    assert UNFORESEEN & set(noted)  # the test sees a plant that runs
    assert not NEVER & pwned(data)


async def test_in_the_sandbox_nothing_planted_reaches_the_server(folders, tmp_path: Path) -> None:
    """A member's own folder: the same operations in the sandbox. What runs at all (a filter, a
    merge driver) runs as the agent's user, and the server's data folder is not there for it."""
    member, data = folders
    repo = init_repo(member / "repo")
    trace = plant(repo, data)
    main = g.Repo.at(repo, jail=jail_for(member, tmp_path / "state"))
    await every_operation(main, member)
    noted = ran(trace)
    assert not NEVER & set(noted), noted
    assert {"clean", "smudge"} <= set(noted) and set(noted.values()) == {str(AGENT_UID)}, noted
    assert list(data.iterdir()) == []


async def task_of_a_shared_project(member: Path) -> tuple[Path, g.Repo, g.Repo, Path]:
    """A repository whose git runs as the server, and a task's worktree in it."""
    repo = init_repo(member / "repo")
    main = g.Repo.at(repo)
    wt = await g.worktree_add(main, member / ".worktrees" / "1", "auto-claude/1", "main")
    assert wt.work_tree is not None
    return repo, main, wt, wt.work_tree


@pytest.mark.parametrize("how", ["git file", "link"])
async def test_a_worktree_s_git_pointed_at_a_planted_repository_is_ignored(folders, tmp_path: Path, how: str) -> None:
    """A task's agent makes a repository of its own in its worktree (hooks, fsmonitor, filters)
    and points the worktree's .git at it, as a gitdir file or a link. The server's git, run as the
    server (a shared project's task), keeps to the worktree's real git directory."""
    member, data = folders
    repo, main, wt, folder = await task_of_a_shared_project(member)
    decoy = init_repo(folder / ".ev")
    decoy_trace = plant(decoy, data)
    (folder / ".git").unlink()
    if how == "link":
        (folder / ".git").symlink_to(folder / ".ev" / ".git")
    else:
        (folder / ".git").write_text("gitdir: .ev/.git\n")
    (folder / "work.txt").write_text("work\n")

    assert sorted(await g.status(wt)) == [".ev/", "work.txt"]
    sha = await g.commit_all(wt, "Task work")
    assert sha == git(repo, "rev-parse", "auto-claude/1").strip()
    assert await g.current_branch(wt) == "auto-claude/1"
    await g.diff(main, "main", "auto-claude/1")
    await g.unmerged(wt)
    await g.merge_abort(wt)
    assert ran(decoy_trace) == {}
    await g.worktree_remove(main, folder)
    assert not folder.exists() and (repo / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert list(data.iterdir()) == []
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_a_nested_repository_is_never_looked_into_even_when_a_gitmodules_asks(folders) -> None:
    """A gitlink in the task's branch (a submodule of the project, or one committed before) whose
    folder the agent fills with a repository of its own, plants included, and a .gitmodules asking
    git to look inside it (``ignore = none``). Looking would run git there, and with it the nested
    repository's filter, as the server."""
    member, data = folders
    repo, main, wt, folder = await task_of_a_shared_project(member)
    nested = init_repo(folder / "nested")
    git(folder, "add", "nested")
    git(folder, "commit", "-q", "-m", "a gitlink")
    trace = plant(nested, data)
    (folder / ".gitmodules").write_text('[submodule "nested"]\n\tpath = nested\n\turl = ./nested\n\tignore = none\n')
    # The same size and an old time: only reading the file through its filter tells it changed.
    (nested / "shared.txt").write_text("changed!\n")
    os.utime(nested / "shared.txt", (1_000_000_000, 1_000_000_000))
    git(folder, "status", "--porcelain")
    assert "clean" in ran(trace)  # plain git status looks inside, and runs the filter
    for marker in [*trace.iterdir(), *data.iterdir()]:
        marker.unlink()

    assert await g.status(wt) == [".gitmodules"]
    await g.commit_all(wt, "Task work")
    await g.unmerged(wt)
    await g.diff(main, "main", "auto-claude/1")
    assert await g.merge_in(wt, "main") == []
    await g.rebase(wt, "main")
    assert ran(trace) == {} and list(data.iterdir()) == []
