"""Worktrees, branches, commits and merges (drivers/git/) against real repositories in tmp_path.

Each test runs twice: with git run by the server itself (a repository no agent can write) and
with git run in a real bubblewrap sandbox that sees only the test's folder (a member's own
folder); both must behave the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers import git as g
from drivers.claude.sandbox import Sandbox, find_bwrap
from tests.processes import assert_all_gone
from tests.task_helpers import bare_remote, git, init_repo

# ---------------------------------------------------------------------------------------
# Helpers


def git_sandbox(folder: Path, state: Path) -> Sandbox:
    """A sandbox as the server's git gets in a member's folder: that folder writable, no network."""
    return Sandbox(bwrap=find_bwrap(), writable=[folder], readonly=[], state_dir=state, home=folder)


@pytest.fixture(params=["server", "sandbox"])
def place(request, tmp_path: Path) -> Callable[[Path], g.Repo]:
    """How a folder of the test is named for git: run by the server, or in a sandbox seeing tmp_path."""
    jail = None if request.param == "server" else git_sandbox(tmp_path, tmp_path.parent / f"{tmp_path.name}-state")
    return lambda folder: g.Repo.at(folder, jail=jail)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on main with README.md and shared.txt (the usual base of a task)."""
    return init_repo(tmp_path / "repo")


@pytest.fixture
def main(repo: Path, place) -> g.Repo:
    return place(repo)


def head(cwd: Path, ref: str = "HEAD") -> str:
    return git(cwd, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()


def parents(cwd: Path, ref: str) -> list[str]:
    return git(cwd, "rev-list", "--parents", "-n", "1", ref).split()[1:]


def subject(cwd: Path, ref: str) -> str:
    return git(cwd, "log", "-1", "--format=%s", ref).strip()


def commit_file(cwd: Path, name: str, text: str, message: str = "change") -> str:
    path = cwd / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(cwd, "add", "--", name)
    git(cwd, "commit", "-q", "-m", message)
    return head(cwd)


def worktrees(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line[len("worktree ") :] for line in out.splitlines() if line.startswith("worktree ")]


def git_path(cwd: Path, name: str) -> Path:
    """A path inside the worktree's git directory (MERGE_HEAD, rebase-merge, ...)."""
    raw = git(cwd, "rev-parse", "--git-path", name).strip()
    return Path(raw) if os.path.isabs(raw) else cwd / raw


async def task_worktree(main: g.Repo, tmp_path: Path, branch: str = "task-1", name: str = "wt") -> g.Repo:
    return await g.worktree_add(main, tmp_path / name, branch, "main")


def folder(repo: g.Repo) -> Path:
    assert repo.work_tree is not None
    return repo.work_tree


async def conflicting(main: g.Repo, tmp_path: Path) -> g.Repo:
    """A task worktree and main both changed shared.txt since the task branched off."""
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "shared.txt", "the task's line\n", "task edits shared")
    commit_file(folder(main), "shared.txt", "main's line\n", "main edits shared")
    return wt


# ---------------------------------------------------------------------------------------
# Repositories, worktrees and branches


async def test_a_repository_is_only_its_own_git_folder_and_a_detached_head_has_no_branch(
    repo: Path, tmp_path: Path, place
) -> None:
    """A folder inside a repository is not one: git is never left to find the repository around it."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (repo / "sub").mkdir()
    assert await g.is_repository(place(repo))
    for other in (repo / "sub", plain, tmp_path / "missing"):
        assert not await g.is_repository(place(other))
    assert await g.current_branch(place(repo)) == "main"
    git(repo, "checkout", "-q", "--detach")
    assert await g.current_branch(place(repo)) == ""


async def test_a_new_folder_becomes_a_repository_with_one_empty_commit(tmp_path: Path, place) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "notes.txt").write_text("kept\n")
    g.start_repository(place(own), message="Your own folder")
    assert subject(own, "main") == "Your own folder"
    assert git(own, "log", "-1", "--format=%an <%ae>").strip() == "Claude Code tasks <tasks@localhost>"
    assert git(own, "ls-tree", "-r", "main") == ""
    assert (own / "notes.txt").read_text() == "kept\n"
    assert "worktree" not in git(own, "config", "--list", "--local")


async def test_a_failed_command_raises_git_error_with_what_git_said(main: g.Repo) -> None:
    with pytest.raises(g.GitError) as caught:
        await g.rev(main, "no-such-branch")
    assert caught.value.code != 0
    assert caught.value.argv[0] == "rev-parse"
    done = await g.run(main, "rev-parse", "--verify", "no-such-branch", check=False)
    assert done.code != 0


async def test_worktree_add_starts_a_new_branch_at_the_base(main: g.Repo, repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(main, tmp_path)
    assert wt.work_tree == tmp_path / "wt" and wt.git_dir == repo / ".git" / "worktrees" / "wt"
    assert wt == main.worktree(tmp_path / "wt") and wt.main == main
    assert await g.current_branch(wt) == "task-1"
    assert head(folder(wt)) == head(repo, "main")
    assert (folder(wt) / "shared.txt").read_text() == "original\n"
    assert await g.branch_exists(main, "task-1")
    assert await g.worktree_of(main, "task-1") == wt
    assert await g.worktree_of(main, "main") == main


async def test_worktree_add_on_an_existing_branch_and_a_record_under_another_name(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """git names a worktree's record after its folder, or another name when that one is taken: the
    record git really keeps is the one returned."""
    git(repo, "branch", "kept")
    (tmp_path / "a").mkdir()
    first = await g.worktree_add(main, tmp_path / "a" / "wt", "kept")
    second = await task_worktree(main, tmp_path)
    assert first.git_dir.name == "wt" and second.git_dir.name != "wt"
    assert await g.current_branch(first) == "kept" and await g.current_branch(second) == "task-1"
    assert await g.find_worktree(main, tmp_path / "wt") == second


async def test_worktree_add_refuses_an_existing_branch(main: g.Repo, tmp_path: Path) -> None:
    await task_worktree(main, tmp_path)
    with pytest.raises(g.GitError):
        await g.worktree_add(main, tmp_path / "other", "task-1", "main")
    assert not (tmp_path / "other").exists()


async def test_worktree_remove_drops_the_worktree_even_with_changes_and_keeps_the_branch(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(main, tmp_path)
    tip = commit_file(folder(wt), "a.txt", "a\n")
    (folder(wt) / "untracked.txt").write_text("not committed\n")
    (folder(wt) / "shared.txt").write_text("modified\n")

    await g.worktree_remove(main, folder(wt))
    assert not folder(wt).exists() and not wt.git_dir.exists()
    assert worktrees(repo) == [str(repo)]
    assert await g.worktree_of(main, "task-1") is None
    assert await g.branch_exists(main, "task-1") and head(repo, "task-1") == tip


async def test_worktree_remove_removes_links_and_never_what_they_point_to(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """An agent's links in its worktree (or a link in the worktree's place) are removed as links."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep\n")
    wt = await task_worktree(main, tmp_path)
    (folder(wt) / "link").symlink_to(outside)
    (folder(wt) / "file-link").symlink_to(outside / "keep.txt")
    await g.worktree_remove(main, folder(wt))
    assert not folder(wt).exists() and (outside / "keep.txt").read_text() == "keep\n"

    (tmp_path / "wt").symlink_to(outside)
    await g.worktree_remove(main, tmp_path / "wt")
    assert not os.path.lexists(tmp_path / "wt") and (outside / "keep.txt").exists()
    assert worktrees(repo) == [str(repo)]


async def test_worktree_remove_of_a_deleted_folder_forgets_it(main: g.Repo, repo: Path, tmp_path: Path) -> None:
    """Someone removed the folder by hand: removing prunes git's record, so the branch can be checked out again."""
    wt = await task_worktree(main, tmp_path)
    path = folder(wt)
    git(repo, "worktree", "lock", str(path))  # even a locked one
    for item in sorted(path.rglob("*"), reverse=True):
        item.unlink() if item.is_file() or item.is_symlink() else item.rmdir()
    path.rmdir()
    git(repo, "worktree", "unlock", str(path))

    await g.worktree_remove(main, path)
    assert worktrees(repo) == [str(repo)]
    await g.worktree_remove(main, path)  # twice is harmless
    git(repo, "worktree", "add", "-q", str(path), "task-1")
    assert await g.current_branch(wt) == "task-1"


async def test_branch_exists_looks_at_branches_only(main: g.Repo, repo: Path) -> None:
    git(repo, "tag", "v1")
    assert await g.branch_exists(main, "main")
    assert not await g.branch_exists(main, "v1")
    assert not await g.branch_exists(main, "task-9")


async def test_branch_delete_refuses_unmerged_work_unless_forced(main: g.Repo, tmp_path: Path) -> None:
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n")
    await g.worktree_remove(main, folder(wt))

    with pytest.raises(g.GitError):
        await g.branch_delete(main, "task-1")
    assert await g.branch_exists(main, "task-1")
    await g.branch_delete(main, "task-1", force=True)
    assert not await g.branch_exists(main, "task-1")
    await g.branch_delete(main, "task-1")  # a missing branch: nothing to do
    await g.branch_delete(main, "task-1", force=True)


async def test_branch_delete_of_a_merged_branch_needs_no_force(main: g.Repo, repo: Path) -> None:
    git(repo, "branch", "merged-already")
    await g.branch_delete(main, "merged-already")
    assert not await g.branch_exists(main, "merged-already")


def test_folders_are_told_without_following_links(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".worktrees" / "1").mkdir(parents=True)
    (tmp_path / "elsewhere" / "2").mkdir(parents=True)
    (tmp_path / "repo" / ".worktrees" / "2").symlink_to(tmp_path / "elsewhere" / "2")
    (tmp_path / "repo" / "linked").symlink_to(tmp_path / "elsewhere")
    root = tmp_path / "repo"
    assert g.is_folder_below(root, root / ".worktrees" / "1")
    assert not g.is_folder_below(root, root / ".worktrees" / "2")
    assert not g.is_folder_below(root, root / "linked" / "2")
    assert not g.is_folder_below(root, tmp_path / "elsewhere" / "2")  # not below the root
    assert not g.is_folder_below(root, root / ".worktrees" / "3")
    assert g.is_folder(root / ".worktrees") and not g.is_folder(root / "linked")
    assert g.has_no_links(root / ".worktrees" / "9") and not g.has_no_links(root / "linked" / "9")


# ---------------------------------------------------------------------------------------
# Status and commits


async def test_status_of_a_clean_worktree_is_empty(main: g.Repo) -> None:
    assert await g.status(main) == []


async def test_status_lists_modified_deleted_renamed_and_untracked_paths(main: g.Repo, repo: Path) -> None:
    """Each changed path once, by its new name; untracked files one by one, names taken literally."""
    commit_file(repo, "a file with a long name that is renamed.txt", "x\n")
    commit_file(repo, "gone.txt", "bye\n")
    git(repo, "mv", "a file with a long name that is renamed.txt", "renamed ✓.txt")
    (repo / "shared.txt").write_text("modified\n")
    git(repo, "add", "shared.txt")
    (repo / "shared.txt").write_text("modified twice\n")  # staged and unstaged: still one entry
    (repo / "gone.txt").unlink()
    (repo / "dir" / "sub").mkdir(parents=True)
    (repo / "dir" / "sub" / "new file.txt").write_text("new\n")
    (repo / "a -> b.txt").write_text("arrow\n")
    (repo / "ünïcode ☃.txt").write_text("snow\n")
    (repo / "b").write_text("one letter\n")

    assert sorted(await g.status(main)) == sorted(
        [
            "renamed ✓.txt",
            "shared.txt",
            "gone.txt",
            "dir/sub/new file.txt",
            "a -> b.txt",
            "ünïcode ☃.txt",
            "b",
        ]
    )


async def test_commit_all_of_a_clean_worktree_is_none(main: g.Repo, repo: Path) -> None:
    before = head(repo)
    assert await g.commit_all(main, "nothing") is None
    assert head(repo) == before


async def test_commit_all_commits_every_change_including_untracked_and_deleted(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(main, tmp_path)
    path = folder(wt)
    before = head(path)
    (path / "shared.txt").write_text("changed\n")
    (path / "README.md").unlink()
    (path / "new dir").mkdir()
    (path / "new dir" / "ü.txt").write_text("new\n")

    sha = await g.commit_all(wt, "Task work\n\nTask #1")
    assert sha == head(path) == head(repo, "task-1")
    assert parents(path, sha) == [before]
    assert git(path, "log", "-1", "--format=%B", sha).strip() == "Task work\n\nTask #1"
    assert await g.status(wt) == []
    assert sorted(git(path, "ls-tree", "-r", "--name-only", "-z", sha).split("\0")[:-1]) == [
        "new dir/ü.txt",
        "shared.txt",
    ]


async def test_commit_all_uses_the_repository_identity_when_it_has_one(
    main: g.Repo, tmp_path: Path, monkeypatch
) -> None:
    """The built-in author is only a fallback: a repository's own user.name/user.email win."""
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    wt = await task_worktree(main, tmp_path)
    (folder(wt) / "a.txt").write_text("a\n")
    sha = await g.commit_all(wt, "work")
    assert (
        git(folder(wt), "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha).strip()
        == "Dev <dev@example.com>|Dev <dev@example.com>"
    )


async def test_commit_all_falls_back_to_its_own_identity(tmp_path: Path, monkeypatch, place) -> None:
    """With no identity in the repository nor the server's environment, commits still succeed, as
    the tasks' author; the server's own git configuration is not read."""
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = The Server\n\temail = server@example.com\n")
    monkeypatch.setenv("HOME", str(home))
    anonymous = tmp_path / "anonymous"
    anonymous.mkdir()
    git(anonymous, "init", "-q", "-b", "main")
    (anonymous / "a.txt").write_text("a\n")

    sha = await g.commit_all(place(anonymous), "first")
    assert sha is not None
    assert git(anonymous, "log", "-1", "--format=%an <%ae>", sha).strip() == "Claude Code tasks <tasks@localhost>"


async def test_commit_all_concludes_a_merge_in_progress(main: g.Repo, repo: Path, tmp_path: Path) -> None:
    wt = await conflicting(main, tmp_path)
    before = head(folder(wt))
    assert await g.merge_in(wt, "main") == ["shared.txt"]
    (folder(wt) / "shared.txt").write_text("both lines, resolved\n")

    sha = await g.commit_all(wt, "Resolve")
    assert sha is not None
    assert parents(folder(wt), sha) == [before, head(repo, "main")]
    assert not git_path(folder(wt), "MERGE_HEAD").exists()
    assert await g.status(wt) == []
    assert git(folder(wt), "show", f"{sha}:shared.txt") == "both lines, resolved\n"


async def test_commit_all_concludes_a_clean_merge_with_nothing_else_changed(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """A merge left open by merge_in (no conflicts) is committed as a merge, not dropped as 'clean'."""
    wt = await task_worktree(main, tmp_path)
    before = commit_file(folder(wt), "a.txt", "a\n")
    main_tip = commit_file(repo, "b.txt", "b\n")
    assert await g.merge_in(wt, "main") == []
    assert head(folder(wt)) == before and git_path(folder(wt), "MERGE_HEAD").exists()

    sha = await g.commit_all(wt, "Take main")
    assert sha is not None and parents(folder(wt), sha) == [before, main_tip]
    assert (folder(wt) / "b.txt").read_text() == "b\n"


async def test_a_worktree_whose_git_file_names_another_repository_is_still_its_own(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """The server names the worktree's git directory itself: what the agent writes into the
    worktree's .git file changes nothing of what the server's git does."""
    wt = await task_worktree(main, tmp_path)
    decoy = folder(wt) / "decoy"
    init_repo(decoy)
    (folder(wt) / ".git").write_text("gitdir: decoy/.git\n")
    (folder(wt) / "a.txt").write_text("a\n")
    sha = await g.commit_all(wt, "work")
    assert sha == head(repo, "task-1") and await g.current_branch(wt) == "task-1"
    assert subject(decoy, "main") == "initial"  # the decoy got nothing
    await g.merge_abort(wt)
    await g.worktree_remove(main, folder(wt))
    assert not folder(wt).exists() and worktrees(repo) == [str(repo)]


# ---------------------------------------------------------------------------------------
# What a branch changed


async def test_changed_files_and_diff_show_only_the_branch_s_own_changes(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """Three dots: what main did since the task branched off is not the task's change."""
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "a.txt", "new file\n", "task adds a")
    commit_file(folder(wt), "shared.txt", "task version\n", "task edits shared")
    commit_file(repo, "README.md", "# main moved on\n", "main edits readme")
    commit_file(repo, "main-only.txt", "main\n", "main adds a file")

    assert sorted(await g.changed_files(main, "main", "task-1")) == ["a.txt", "shared.txt"]
    text = await g.diff(main, "main", "task-1")
    assert "+++ b/a.txt" in text and "+task version" in text
    assert "README.md" not in text and "main-only.txt" not in text
    logged = await g.log(main, "main", "task-1")
    assert [line.split(" ", 1)[1] for line in logged] == ["task edits shared", "task adds a"]
    assert head(repo, "task-1").startswith(logged[0].split(" ", 1)[0])
    assert await g.changed_files(main, "main", "main") == []


async def test_changed_files_names_unusual_files_literally(main: g.Repo, tmp_path: Path) -> None:
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "dir with space/ünï ☃.txt", "x\n")
    commit_file(folder(wt), 'quote".txt', "y\n")
    assert sorted(await g.changed_files(main, "main", "task-1")) == sorted(["dir with space/ünï ☃.txt", 'quote".txt'])


async def test_diff_is_cut_at_max_bytes(main: g.Repo, tmp_path: Path) -> None:
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "big.txt", "line\n" * 1000)
    whole = await g.diff(main, "main", "task-1")
    cut = await g.diff(main, "main", "task-1", max_bytes=100)
    assert len(whole) > 1000
    assert cut.startswith(whole[:100]) and cut.endswith("(diff cut)\n") and len(cut) < 150


# ---------------------------------------------------------------------------------------
# Merging into the base


async def test_merge_into_a_checked_out_base_merges_there_with_a_merge_commit(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(main, tmp_path)
    task_tip = commit_file(folder(wt), "a.txt", "a\n")
    old = head(repo, "main")

    sha = await g.merge_into(main, "main", "task-1", "Merge task #1: add a")
    assert sha == head(repo, "main")
    assert parents(repo, sha) == [old, task_tip]
    assert subject(repo, sha) == "Merge task #1: add a"
    assert (repo / "a.txt").read_text() == "a\n"  # the checkout itself was updated
    assert await g.status(main) == []


async def test_merge_diff_is_what_the_merge_brought_and_find_merge_finds_it_by_its_message(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "a.txt", "from the task\n")
    commit_file(repo, "main-only.txt", "main\n", "main moves on")
    sha = await g.merge_into(main, "main", "task-1", "Merge task #1: add a")
    await g.worktree_remove(main, folder(wt))
    await g.branch_delete(main, "task-1", force=True)
    commit_file(repo, "later.txt", "later\n", "after the merge")

    text = await g.diff(main, "main", "main") + await g.merge_diff(main, sha)
    assert "+++ b/a.txt" in text and "+from the task" in text
    assert "main-only.txt" not in text and "later.txt" not in text
    assert await g.find_merge(main, "main", "Merge task #1: ") == sha
    assert await g.find_merge(main, "main", "Merge task #12: ") is None
    assert await g.find_merge(main, "main", "Merge task #") == sha


async def test_merge_into_is_a_merge_commit_even_when_it_could_fast_forward(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(main, tmp_path)
    task_tip = commit_file(folder(wt), "a.txt", "a\n")
    sha = await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert sha != task_tip and len(parents(repo, sha)) == 2


async def test_merge_into_a_base_checked_out_in_another_worktree(main: g.Repo, repo: Path, tmp_path: Path) -> None:
    """The base is found in whichever worktree has it, even one whose path has spaces and non-ASCII letters."""
    git(repo, "switch", "-q", "-c", "elsewhere")
    base_wt = tmp_path / "base checkout ✓"
    git(repo, "worktree", "add", "-q", str(base_wt), "main")
    wt = await task_worktree(main, tmp_path)
    task_tip = commit_file(folder(wt), "a.txt", "a\n")
    old = head(repo, "main")

    sha = await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert parents(repo, sha) == [old, task_tip]
    assert (base_wt / "a.txt").read_text() == "a\n"
    assert not (repo / "a.txt").exists()
    assert git(base_wt, "status", "--porcelain") == ""


async def test_merge_into_a_base_checked_out_nowhere_moves_only_the_ref(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    git(repo, "switch", "-q", "-c", "elsewhere")
    wt = await task_worktree(main, tmp_path)
    task_tip = commit_file(folder(wt), "a.txt", "a\n")
    old = head(repo, "main")

    sha = await g.merge_into(main, "main", "task-1", "Merge task #1: add a")
    assert head(repo, "main") == sha
    assert parents(repo, sha) == [old, task_tip]
    assert subject(repo, sha) == "Merge task #1: add a"
    assert git(repo, "show", f"{sha}:a.txt") == "a\n"
    # The checkout (on another branch) is untouched, and no other worktree was made.
    assert await g.current_branch(main) == "elsewhere" and not (repo / "a.txt").exists()
    assert await g.status(main) == []
    assert worktrees(repo) == [str(repo), str(folder(wt))]
    assert "merge" in git(repo, "reflog", "-1", "--format=%gs", "refs/heads/main").lower()


@pytest.mark.parametrize("checked_out", [False, True], ids=["base-checked-out-nowhere", "base-checked-out"])
async def test_merge_into_fails_rather_than_overwrite_a_base_that_moved_meanwhile(
    main: g.Repo, repo: Path, tmp_path: Path, checked_out: bool
) -> None:
    """Compare-and-swap: a commit that lands on the base while the merge runs is never lost. The
    commit lands from a merge driver of the repository's, which git runs in the middle of the merge."""
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "shared.txt", "the task's line\noriginal\n")
    commit_file(repo, "shared.txt", "original\nmain's line\n")
    intruder = commit_file(repo, "b.txt", "b\n", "someone else's work")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    if not checked_out:
        git(repo, "switch", "-q", "-c", "elsewhere")
    old = head(repo, "main")
    (repo / ".git" / "info" / "attributes").write_text("shared.txt merge=intrude\n")
    git(
        repo,
        "config",
        "merge.intrude.driver",
        f"git --git-dir='{repo}/.git' update-ref refs/heads/main {intruder} && git merge-file %A %O %B",
    )

    with pytest.raises(g.GitError):
        await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert head(repo, "main") == intruder != old
    assert worktrees(repo) == [str(repo), str(folder(wt))]


async def test_merge_conflict_in_a_checked_out_base_leaves_it_unchanged(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    await conflicting(main, tmp_path)
    old = head(repo, "main")

    with pytest.raises(g.MergeConflict) as caught:
        await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert caught.value.files == ["shared.txt"]
    assert head(repo, "main") == old
    assert await g.status(main) == []
    assert not git_path(repo, "MERGE_HEAD").exists()
    assert (repo / "shared.txt").read_text() == "main's line\n"


async def test_merge_conflict_in_a_base_checked_out_nowhere_leaves_it_unchanged(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await conflicting(main, tmp_path)
    git(repo, "switch", "-q", "-c", "elsewhere")
    old = head(repo, "main")

    with pytest.raises(g.MergeConflict) as caught:
        await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert caught.value.files == ["shared.txt"]
    assert head(repo, "main") == old
    assert worktrees(repo) == [str(repo), str(folder(wt))]


async def test_merge_into_leaves_a_merge_of_someone_else_in_the_base_checkout_alone(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """The base's checkout is mid-merge (a person resolving by hand): refuse, and abort nothing of theirs."""
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n")
    git(repo, "switch", "-q", "-c", "theirs")
    commit_file(repo, "shared.txt", "their line\n")
    git(repo, "switch", "-q", "main")
    old = commit_file(repo, "shared.txt", "main's line\n")
    done = await g.run(main, "merge", "theirs", check=False)
    assert done.code != 0 and await g.unmerged(main) == ["shared.txt"]
    (repo / "shared.txt").write_text("resolved by hand\n")  # not added yet: still unmerged

    with pytest.raises(g.GitError) as caught:
        await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert not isinstance(caught.value, g.MergeConflict)
    assert head(repo, "main") == old
    assert git_path(repo, "MERGE_HEAD").exists()
    assert (repo / "shared.txt").read_text() == "resolved by hand\n"

    git(repo, "add", "shared.txt")  # resolved, not committed yet: still theirs to conclude
    with pytest.raises(g.GitError):
        await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert git_path(repo, "MERGE_HEAD").exists()
    assert git(repo, "show", ":shared.txt") == "resolved by hand\n"


async def test_merge_into_refuses_to_overwrite_local_changes_in_the_base_checkout(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "shared.txt", "the task's line\n")
    (repo / "shared.txt").write_text("not committed yet\n")
    old = head(repo, "main")

    with pytest.raises(g.GitError) as caught:
        await g.merge_into(main, "main", "task-1", "Merge task #1")
    assert not isinstance(caught.value, g.MergeConflict)
    assert head(repo, "main") == old
    assert (repo / "shared.txt").read_text() == "not committed yet\n"


# ---------------------------------------------------------------------------------------
# Bringing the base into a task


async def test_rebase_without_conflict_moves_the_branch_onto_the_base(main: g.Repo, repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(main, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n", "task adds a")
    main_tip = commit_file(repo, "b.txt", "b\n", "main adds b")

    assert await g.rebase(wt, "main") == []
    assert parents(folder(wt), "HEAD") == [main_tip]
    assert subject(folder(wt), "HEAD") == "task adds a"
    assert await g.current_branch(wt) == "task-1"
    assert (folder(wt) / "b.txt").exists() and await g.status(wt) == []


async def test_rebase_with_conflict_is_aborted_and_the_branch_is_exactly_as_before(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    wt = await conflicting(main, tmp_path)
    before = head(folder(wt))

    assert await g.rebase(wt, "main") == ["shared.txt"]
    assert head(folder(wt)) == head(repo, "task-1") == before
    assert await g.current_branch(wt) == "task-1"
    assert await g.status(wt) == []
    assert (folder(wt) / "shared.txt").read_text() == "the task's line\n"
    assert not git_path(folder(wt), "rebase-merge").exists() and not git_path(folder(wt), "rebase-apply").exists()


async def test_rebase_with_conflict_can_be_left_in_progress(main: g.Repo, tmp_path: Path) -> None:
    wt = await conflicting(main, tmp_path)
    assert await g.rebase(wt, "main", abort_on_conflict=False) == ["shared.txt"]
    assert git_path(folder(wt), "rebase-merge").exists()
    assert "<<<<<<<" in (folder(wt) / "shared.txt").read_text()


async def test_merge_in_leaves_conflict_markers_and_the_merge_open(main: g.Repo, tmp_path: Path) -> None:
    wt = await conflicting(main, tmp_path)
    before = head(folder(wt))

    assert await g.merge_in(wt, "main") == ["shared.txt"]
    text = (folder(wt) / "shared.txt").read_text()
    assert "<<<<<<<" in text and "the task's line" in text and "main's line" in text and ">>>>>>>" in text
    assert head(folder(wt)) == before
    assert git_path(folder(wt), "MERGE_HEAD").exists()
    assert await g.unmerged(wt) == ["shared.txt"]
    await g.merge_abort(wt)
    assert not git_path(folder(wt), "MERGE_HEAD").exists() and await g.status(wt) == []


async def test_merge_in_of_what_is_already_merged_changes_nothing(main: g.Repo, tmp_path: Path) -> None:
    wt = await task_worktree(main, tmp_path)
    before = head(folder(wt))
    assert await g.merge_in(wt, "main") == []
    assert head(folder(wt)) == before and await g.commit_all(wt, "nothing") is None


# ---------------------------------------------------------------------------------------
# The worktrees' folder, out of git's sight


async def test_ignore_folder_makes_it_once_and_git_never_shows_what_is_in_it(main: g.Repo, repo: Path) -> None:
    await g.ignore_folder(main, ".tasks")
    (repo / ".tasks" / ".gitignore").write_text("*\n# kept as it is\n")
    await g.ignore_folder(main, ".tasks")
    assert (repo / ".tasks" / ".gitignore").read_text() == "*\n# kept as it is\n"
    (repo / ".tasks" / "x.txt").write_text("x\n")
    assert await g.status(main) == []
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / ".gitignore").exists() and "tasks" not in (repo / ".git" / "info" / "exclude").read_text()


async def test_ignore_folder_writes_through_no_link(tmp_path: Path, place) -> None:
    """A .gitignore planted as a link is left alone (nothing is written where it points)."""
    repo = init_repo(tmp_path / "repo")
    (repo / ".tasks").mkdir()
    target = tmp_path / "target.txt"
    target.write_text("untouched\n")
    (repo / ".tasks" / ".gitignore").symlink_to(target)
    await g.ignore_folder(place(repo), ".tasks")
    assert target.read_text() == "untouched\n"


async def test_ignore_folder_refuses_a_linked_folder_outside_a_sandbox(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    (tmp_path / "elsewhere").mkdir()
    (repo / ".tasks").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(g.GitError, match="symbolic link"):
        await g.ignore_folder(g.Repo.at(repo), ".tasks")
    assert list((tmp_path / "elsewhere").iterdir()) == []


# ---------------------------------------------------------------------------------------
# Names: spaces, non-ASCII letters and shell syntax are only ever data


async def test_a_whole_task_cycle_with_spaces_and_unicode_in_names(main: g.Repo, repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "work trees" / "tâche n°1 ☃"
    wt = await g.worktree_add(main, path, "tâche/ünï-1", "main")
    (path / "dossier é").mkdir()
    (path / "dossier é" / "fichier ü.txt").write_text("bonjour\n")
    sha = await g.commit_all(wt, "Tâche: « bonjour »")
    assert sha is not None and subject(path, sha) == "Tâche: « bonjour »"
    assert await g.worktree_of(main, "tâche/ünï-1") == wt
    assert await g.changed_files(main, "main", "tâche/ünï-1") == ["dossier é/fichier ü.txt"]

    merged = await g.merge_into(main, "main", "tâche/ünï-1", "Merge tâche #1: « bonjour »")
    assert subject(repo, merged) == "Merge tâche #1: « bonjour »"
    await g.worktree_remove(main, path)
    await g.branch_delete(main, "tâche/ünï-1")
    assert not path.exists() and not await g.branch_exists(main, "tâche/ünï-1")
    assert (repo / "dossier é" / "fichier ü.txt").read_text() == "bonjour\n"


async def test_nothing_goes_through_a_shell(main: g.Repo, repo: Path, tmp_path: Path, monkeypatch) -> None:
    """Shell syntax in paths, branch names, messages and file names is passed to git as it is."""
    monkeypatch.chdir(tmp_path)
    evil = "$(touch${IFS}pwned1);`touch${IFS}pwned2`|touch${IFS}pwned3&>pwned4"
    branch = f"task-{evil}"
    path = tmp_path / f"wt {evil} 'quoted' \"double\""
    wt = await g.worktree_add(main, path, branch, "main")
    (path / f"file {evil}.txt").write_text("x\n")
    assert await g.status(wt) == [f"file {evil}.txt"]
    sha = await g.commit_all(wt, f"message {evil}")
    assert sha is not None and subject(path, sha) == f"message {evil}"
    await g.ignore_folder(main, evil)
    git(repo, "switch", "-q", "-c", "elsewhere")
    merged = await g.merge_into(main, "main", branch, f"Merge {evil}")
    assert subject(repo, merged) == f"Merge {evil}"
    assert await g.changed_files(main, f"{merged}~1", merged) == [f"file {evil}.txt"]
    await g.worktree_remove(main, path)
    await g.branch_delete(main, branch, force=True)

    assert not path.exists() and not await g.branch_exists(main, branch)
    assert (repo / evil / ".gitignore").read_text() == "*\n"
    assert [p for p in tmp_path.rglob("pwned*")] == []
    assert [p for p in Path.cwd().glob("pwned*")] == []


# ---------------------------------------------------------------------------------------
# Remotes and pushing (a bare repository in tmp_path is the remote; the server's own place)


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    return bare_remote(tmp_path / "remote.git", repo)


@pytest.fixture
def server_repo(repo: Path) -> g.Repo:
    return g.Repo.at(repo)


def refuse_pushes(bare: Path, script: str) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{script}\n")
    hook.chmod(0o755)


async def test_remote_urls_are_read(server_repo: g.Repo, repo: Path, remote: Path) -> None:
    git(repo, "remote", "set-url", "--push", "origin", "/elsewhere.git")
    assert await g.remote_url(server_repo, "origin") == str(remote)
    assert await g.remote_url(server_repo, "origin", push=True) == "/elsewhere.git"
    assert g.remote_url_now(server_repo, "origin") == str(remote)
    assert await g.remote_url(server_repo, "upstream") is None and g.remote_url_now(server_repo, "upstream") is None


async def test_push_sends_the_branch_and_later_a_fast_forward(
    server_repo: g.Repo, remote: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(server_repo, tmp_path)
    first = commit_file(folder(wt), "a.txt", "a\n")
    await g.push(server_repo, "origin", "task-1")
    assert head(remote, "task-1") == first
    second = commit_file(folder(wt), "b.txt", "b\n")
    await g.push(server_repo, "origin", "task-1")
    assert head(remote, "task-1") == second


async def test_a_push_from_a_sandboxed_repository_is_refused(repo: Path, remote: Path, tmp_path: Path) -> None:
    """Pushes carry the project's credentials: only a repository no agent can write pushes."""
    jailed = g.Repo.at(repo, jail=git_sandbox(tmp_path, tmp_path.parent / f"{tmp_path.name}-state"))
    with pytest.raises(g.GitError, match="no agent can write"):
        await g.push(jailed, "origin", "main")


async def test_a_rebased_branch_replaces_only_what_was_pushed(
    server_repo: g.Repo, repo: Path, remote: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(server_repo, tmp_path)
    pushed = commit_file(folder(wt), "a.txt", "a\n")
    await g.push(server_repo, "origin", "task-1")
    commit_file(repo, "main.txt", "main moved\n")
    assert await g.rebase(wt, "main") == []
    with pytest.raises(g.GitError, match="rejected") as refused:
        await g.push(server_repo, "origin", "task-1")  # not a fast-forward
    assert "non-fast-forward" in refused.value.err or "fetch first" in refused.value.err
    await g.push(server_repo, "origin", "task-1", expect=pushed)
    assert head(remote, "task-1") == head(folder(wt))
    # Someone else pushed to it meanwhile: their commit is not overwritten.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", "task-1", str(remote), str(other))
    theirs = commit_file(other, "theirs.txt", "theirs\n")
    git(other, "push", "-q", "origin", "task-1")
    commit_file(folder(wt), "c.txt", "c\n")
    with pytest.raises(g.GitError, match="stale info"):
        await g.push(server_repo, "origin", "task-1", expect=head(folder(wt), "HEAD~1"))
    assert head(remote, "task-1") == theirs


async def test_a_refused_push_carries_gits_own_words(server_repo: g.Repo, remote: Path, tmp_path: Path) -> None:
    refuse_pushes(remote, 'echo "pushes are closed today" >&2; exit 1')
    wt = await task_worktree(server_repo, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n")
    with pytest.raises(g.GitError) as refused:
        await g.push(server_repo, "origin", "task-1")
    assert "pushes are closed today" in refused.value.err and "pre-receive hook declined" in refused.value.err
    assert git(remote, "branch", "--list", "task-1") == ""


async def test_a_push_that_hangs_is_ended_with_what_it_started(
    server_repo: g.Repo, remote: Path, tmp_path: Path
) -> None:
    refuse_pushes(remote, f"echo $$ > {tmp_path}/hook.pid; sleep 60")
    wt = await task_worktree(server_repo, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n")
    with pytest.raises(g.GitError, match="no answer within 1 seconds"):
        await g.push(server_repo, "origin", "task-1", timeout=1)
    hook = int((tmp_path / "hook.pid").read_text())
    assert_all_gone([hook])  # killed with git's group; on a busy machine it takes a moment to die


async def test_a_push_whose_caller_gives_up_is_ended_with_what_it_started(
    server_repo: g.Repo, remote: Path, tmp_path: Path
) -> None:
    # A task stopped, or the server stopping, while its branch is pushed: nothing of git stays.
    refuse_pushes(remote, f"echo $$ > {tmp_path}/hook.pid; sleep 60")
    wt = await task_worktree(server_repo, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n")
    push = asyncio.create_task(g.push(server_repo, "origin", "task-1"))
    for _ in range(500):
        if (tmp_path / "hook.pid").exists() and (tmp_path / "hook.pid").read_text().strip():
            break
        await asyncio.sleep(0.02)
    push.cancel()
    with pytest.raises(asyncio.CancelledError):
        await push
    hook = int((tmp_path / "hook.pid").read_text())
    assert_all_gone([hook])  # killed with git's group; on a busy machine it takes a moment to die


async def test_a_push_runs_no_local_hook(server_repo: g.Repo, repo: Path, remote: Path, tmp_path: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/pre-push-ran\nexit 1\n")
    hook.chmod(0o755)
    wt = await task_worktree(server_repo, tmp_path)
    commit_file(folder(wt), "a.txt", "a\n")
    await g.push(server_repo, "origin", "task-1")
    assert not (tmp_path / "pre-push-ran").exists()


async def test_a_sandboxed_git_that_hangs_is_ended_with_its_sandbox(tmp_path: Path) -> None:
    """A command in the sandbox whose caller gives up (a task stopped) ends with all it started."""
    repo = init_repo(tmp_path / "repo")
    jailed = g.Repo.at(repo, jail=git_sandbox(tmp_path, tmp_path.parent / f"{tmp_path.name}-state"))
    marker = "sleep 6173"
    call = asyncio.create_task(g.run_program(jailed, ["sh", "-c", f"(setsid {marker} &) ; sleep 6174"]))
    for _ in range(500):
        if any(marker in line for line in cmdlines()):
            break
        await asyncio.sleep(0.02)
    assert any(marker in line for line in cmdlines())
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(500):
        if not any(marker in line for line in cmdlines()):
            break
        await asyncio.sleep(0.02)
    assert not any(marker in line for line in cmdlines())


def cmdlines() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return found


async def test_commit_all_commits_what_is_staged_and_leaves_nested_repositories_out(
    main: g.Repo, repo: Path, tmp_path: Path
) -> None:
    """A nested repository (one a task's agent made, or cloned) is neither added nor looked into:
    even a .gitmodules of the agent's asking git to look inside is overruled."""
    wt = await task_worktree(main, tmp_path)
    path = folder(wt)
    git(path, "mv", "README.md", "READ.md")  # staged already
    git(path, "rm", "-q", "shared.txt")
    init_repo(path / "nested")
    (path / ".gitmodules").write_text('[submodule "nested"]\n\tpath = nested\n\turl = ./nested\n\tignore = none\n')
    assert sorted(await g.status(wt)) == [".gitmodules", "READ.md", "nested/", "shared.txt"]
    sha = await g.commit_all(wt, "work")
    assert sha is not None
    assert sorted(git(path, "ls-tree", "-r", "--name-only", sha).split()) == [".gitmodules", "READ.md"]
    assert await g.status(wt) == ["nested/"]
    assert await g.commit_all(wt, "nothing but the nested repository") is None


async def test_a_sandboxed_git_that_never_answers_is_ended_and_says_so(tmp_path: Path) -> None:
    """A filter an agent planted that never ends would hold its task's slot for ever: the sandbox
    is ended after its time (SANDBOX_TIMEOUT), and the error says so."""
    repo = init_repo(tmp_path / "repo")
    jailed = g.Repo.at(repo, jail=git_sandbox(tmp_path, tmp_path.parent / f"{tmp_path.name}-state"))
    with pytest.raises(g.GitError, match="no answer within 1 seconds"):
        await g.run_program(jailed, ["sh", "-c", "(setsid sleep 6179 &) ; sleep 6180"], timeout=1)
    for _ in range(500):
        if not any("sleep 6179" in line or "sleep 6180" in line for line in cmdlines()):
            break
        await asyncio.sleep(0.02)
    assert not any("sleep 6179" in line or "sleep 6180" in line for line in cmdlines())
