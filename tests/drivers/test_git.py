"""Worktrees, branches, commits and merges (drivers/git.py) against real repositories in tmp_path."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from drivers import git as g
from tests.processes import assert_all_gone
from tests.task_helpers import bare_remote, git, init_repo

# ---------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on main with README.md and shared.txt (the usual base of a task)."""
    return init_repo(tmp_path / "repo")


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


async def task_worktree(repo: Path, tmp_path: Path, branch: str = "task-1", name: str = "wt") -> Path:
    path = tmp_path / name
    await g.worktree_add(repo, path, branch, "main")
    return path


async def conflicting(repo: Path, tmp_path: Path) -> Path:
    """A task worktree and main both changed shared.txt since the task branched off."""
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "shared.txt", "the task's line\n", "task edits shared")
    commit_file(repo, "shared.txt", "main's line\n", "main edits shared")
    return wt


# ---------------------------------------------------------------------------------------
# Repositories, worktrees and branches


async def test_only_the_top_of_a_repository_is_a_toplevel_and_a_detached_head_has_no_branch(
    repo: Path, tmp_path: Path
) -> None:
    """A folder inside a repository is not one of its own: git would find the repository around it."""
    plain = tmp_path / "plain"
    plain.mkdir()
    (repo / "sub").mkdir()
    assert await g.is_toplevel(repo) and g.is_toplevel_now(repo)
    assert not await g.is_toplevel(repo / "sub") and not g.is_toplevel_now(repo / "sub")
    assert Path(await g.toplevel_of(repo / "sub")) == repo.resolve()
    for folder in (plain, tmp_path / "missing"):
        assert not await g.is_toplevel(folder) and not g.is_toplevel_now(folder)
        assert await g.toplevel_of(folder) is None
    assert await g.current_branch(repo) == "main"
    git(repo, "checkout", "-q", "--detach")
    assert await g.current_branch(repo) == ""


async def test_a_failed_command_raises_git_error_with_what_git_said(repo: Path) -> None:
    with pytest.raises(g.GitError) as caught:
        await g.rev(repo, "no-such-branch")
    assert caught.value.code != 0
    assert caught.value.argv[0] == "rev-parse"
    done = await g.run(repo, "rev-parse", "--verify", "no-such-branch", check=False)
    assert done.code != 0


async def test_worktree_add_starts_a_new_branch_at_the_base(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    assert await g.current_branch(wt) == "task-1"
    assert head(wt) == head(repo, "main")
    assert (wt / "shared.txt").read_text() == "original\n"
    assert await g.branch_exists(repo, "task-1")
    assert await g.worktree_of(repo, "task-1") == str(wt)
    assert await g.worktree_of(repo, "main") == str(repo)


async def test_worktree_add_refuses_an_existing_branch(repo: Path, tmp_path: Path) -> None:
    await task_worktree(repo, tmp_path)
    with pytest.raises(g.GitError):
        await g.worktree_add(repo, tmp_path / "other", "task-1", "main")
    assert not (tmp_path / "other").exists()


async def test_worktree_remove_drops_the_worktree_even_with_changes_and_keeps_the_branch(
    repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(repo, tmp_path)
    tip = commit_file(wt, "a.txt", "a\n")
    (wt / "untracked.txt").write_text("not committed\n")
    (wt / "shared.txt").write_text("modified\n")

    await g.worktree_remove(repo, wt)
    assert not wt.exists()
    assert worktrees(repo) == [str(repo)]
    assert await g.worktree_of(repo, "task-1") is None
    assert await g.branch_exists(repo, "task-1") and head(repo, "task-1") == tip


async def test_worktree_remove_of_a_deleted_folder_forgets_it(repo: Path, tmp_path: Path) -> None:
    """Someone removed the folder by hand: removing prunes git's record, so the branch can be checked out again."""
    wt = await task_worktree(repo, tmp_path)
    git(repo, "worktree", "lock", str(wt))  # even a locked one
    for path in sorted(wt.rglob("*"), reverse=True):
        path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    wt.rmdir()
    git(repo, "worktree", "unlock", str(wt))

    await g.worktree_remove(repo, wt)
    assert worktrees(repo) == [str(repo)]
    await g.worktree_remove(repo, wt)  # twice is harmless
    git(repo, "worktree", "add", "-q", str(wt), "task-1")
    assert await g.current_branch(wt) == "task-1"


async def test_branch_exists_looks_at_branches_only(repo: Path) -> None:
    git(repo, "tag", "v1")
    assert await g.branch_exists(repo, "main")
    assert not await g.branch_exists(repo, "v1")
    assert not await g.branch_exists(repo, "task-9")


async def test_branch_delete_refuses_unmerged_work_unless_forced(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    await g.worktree_remove(repo, wt)

    with pytest.raises(g.GitError):
        await g.branch_delete(repo, "task-1")
    assert await g.branch_exists(repo, "task-1")
    await g.branch_delete(repo, "task-1", force=True)
    assert not await g.branch_exists(repo, "task-1")
    await g.branch_delete(repo, "task-1")  # a missing branch: nothing to do
    await g.branch_delete(repo, "task-1", force=True)


async def test_branch_delete_of_a_merged_branch_needs_no_force(repo: Path) -> None:
    git(repo, "branch", "merged-already")
    await g.branch_delete(repo, "merged-already")
    assert not await g.branch_exists(repo, "merged-already")


# ---------------------------------------------------------------------------------------
# Status and commits


async def test_status_of_a_clean_worktree_is_empty(repo: Path) -> None:
    assert await g.status(repo) == []


async def test_status_lists_modified_deleted_renamed_and_untracked_paths(repo: Path) -> None:
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

    assert sorted(await g.status(repo)) == sorted(
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


async def test_commit_all_of_a_clean_worktree_is_none(repo: Path) -> None:
    before = head(repo)
    assert await g.commit_all(repo, "nothing") is None
    assert head(repo) == before


async def test_commit_all_commits_every_change_including_untracked_and_deleted(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    before = head(wt)
    (wt / "shared.txt").write_text("changed\n")
    (wt / "README.md").unlink()
    (wt / "new dir").mkdir()
    (wt / "new dir" / "ü.txt").write_text("new\n")

    sha = await g.commit_all(wt, "Task work\n\nTask #1")
    assert sha == head(wt) == head(repo, "task-1")
    assert parents(wt, sha) == [before]
    assert git(wt, "log", "-1", "--format=%B", sha).strip() == "Task work\n\nTask #1"
    assert await g.status(wt) == []
    assert sorted(git(wt, "ls-tree", "-r", "--name-only", "-z", sha).split("\0")[:-1]) == [
        "new dir/ü.txt",
        "shared.txt",
    ]


async def test_commit_all_uses_the_repository_identity_when_it_has_one(repo: Path, tmp_path: Path, monkeypatch) -> None:
    """The built-in author is only a fallback: a repository's own user.name/user.email win."""
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    wt = await task_worktree(repo, tmp_path)
    (wt / "a.txt").write_text("a\n")
    sha = await g.commit_all(wt, "work")
    assert (
        git(wt, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha).strip()
        == "Dev <dev@example.com>|Dev <dev@example.com>"
    )


async def test_commit_all_falls_back_to_its_own_identity(tmp_path: Path, monkeypatch) -> None:
    """With no identity anywhere (no config, no environment) commits still succeed, as the tasks' author."""
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    bare = tmp_path / "anonymous"
    bare.mkdir()
    git(bare, "init", "-q", "-b", "main")
    (bare / "a.txt").write_text("a\n")

    sha = await g.commit_all(bare, "first")
    assert sha is not None
    assert git(bare, "log", "-1", "--format=%an <%ae>", sha).strip() == "Claude Code tasks <tasks@localhost>"


async def test_commit_all_concludes_a_merge_in_progress(repo: Path, tmp_path: Path) -> None:
    wt = await conflicting(repo, tmp_path)
    before = head(wt)
    assert await g.merge_in(wt, "main") == ["shared.txt"]
    (wt / "shared.txt").write_text("both lines, resolved\n")

    sha = await g.commit_all(wt, "Resolve")
    assert sha is not None
    assert parents(wt, sha) == [before, head(repo, "main")]
    assert not git_path(wt, "MERGE_HEAD").exists()
    assert await g.status(wt) == []
    assert git(wt, "show", f"{sha}:shared.txt") == "both lines, resolved\n"


async def test_commit_all_concludes_a_clean_merge_with_nothing_else_changed(repo: Path, tmp_path: Path) -> None:
    """A merge left open by merge_in (no conflicts) is committed as a merge, not dropped as 'clean'."""
    wt = await task_worktree(repo, tmp_path)
    before = commit_file(wt, "a.txt", "a\n")
    main_tip = commit_file(repo, "b.txt", "b\n")
    assert await g.merge_in(wt, "main") == []
    assert head(wt) == before and git_path(wt, "MERGE_HEAD").exists()

    sha = await g.commit_all(wt, "Take main")
    assert sha is not None and parents(wt, sha) == [before, main_tip]
    assert (wt / "b.txt").read_text() == "b\n"


# ---------------------------------------------------------------------------------------
# What a branch changed


async def test_changed_files_and_diff_show_only_the_branch_s_own_changes(repo: Path, tmp_path: Path) -> None:
    """Three dots: what main did since the task branched off is not the task's change."""
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "new file\n", "task adds a")
    commit_file(wt, "shared.txt", "task version\n", "task edits shared")
    commit_file(repo, "README.md", "# main moved on\n", "main edits readme")
    commit_file(repo, "main-only.txt", "main\n", "main adds a file")

    assert sorted(await g.changed_files(repo, "main", "task-1")) == ["a.txt", "shared.txt"]
    text = await g.diff(repo, "main", "task-1")
    assert "+++ b/a.txt" in text and "+task version" in text
    assert "README.md" not in text and "main-only.txt" not in text
    logged = await g.log(repo, "main", "task-1")
    assert [line.split(" ", 1)[1] for line in logged] == ["task edits shared", "task adds a"]
    assert head(repo, "task-1").startswith(logged[0].split(" ", 1)[0])
    assert await g.changed_files(repo, "main", "main") == []


async def test_changed_files_names_unusual_files_literally(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "dir with space/ünï ☃.txt", "x\n")
    commit_file(wt, 'quote".txt', "y\n")
    assert sorted(await g.changed_files(repo, "main", "task-1")) == sorted(["dir with space/ünï ☃.txt", 'quote".txt'])


async def test_diff_is_cut_at_max_bytes(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "big.txt", "line\n" * 1000)
    whole = await g.diff(repo, "main", "task-1")
    cut = await g.diff(repo, "main", "task-1", max_bytes=100)
    assert len(whole) > 1000
    assert cut.startswith(whole[:100]) and cut.endswith("(diff cut)\n") and len(cut) < 150


# ---------------------------------------------------------------------------------------
# Merging into the base


async def test_merge_into_a_checked_out_base_merges_there_with_a_merge_commit(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    task_tip = commit_file(wt, "a.txt", "a\n")
    old = head(repo, "main")

    sha = await g.merge_into(repo, "main", "task-1", "Merge task #1: add a")
    assert sha == head(repo, "main")
    assert parents(repo, sha) == [old, task_tip]
    assert subject(repo, sha) == "Merge task #1: add a"
    assert (repo / "a.txt").read_text() == "a\n"  # the checkout itself was updated
    assert await g.status(repo) == []


async def test_merge_diff_is_what_the_merge_brought_and_find_merge_finds_it_by_its_message(
    repo: Path, tmp_path: Path
) -> None:
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "from the task\n")
    commit_file(repo, "main-only.txt", "main\n", "main moves on")
    sha = await g.merge_into(repo, "main", "task-1", "Merge task #1: add a")
    await g.worktree_remove(repo, wt)
    await g.branch_delete(repo, "task-1", force=True)
    commit_file(repo, "later.txt", "later\n", "after the merge")

    text = await g.diff(repo, "main", "main") + await g.merge_diff(repo, sha)
    assert "+++ b/a.txt" in text and "+from the task" in text
    assert "main-only.txt" not in text and "later.txt" not in text
    assert await g.find_merge(repo, "main", "Merge task #1: ") == sha
    assert await g.find_merge(repo, "main", "Merge task #12: ") is None
    assert await g.find_merge(repo, "main", "Merge task #") == sha


async def test_merge_into_is_a_merge_commit_even_when_it_could_fast_forward(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    task_tip = commit_file(wt, "a.txt", "a\n")
    sha = await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert sha != task_tip and len(parents(repo, sha)) == 2


async def test_merge_into_a_base_checked_out_in_another_worktree(repo: Path, tmp_path: Path) -> None:
    """The base is found in whichever worktree has it, even one whose path has spaces and non-ASCII letters."""
    git(repo, "switch", "-q", "-c", "elsewhere")
    base_wt = tmp_path / "base checkout ✓"
    git(repo, "worktree", "add", "-q", str(base_wt), "main")
    wt = await task_worktree(repo, tmp_path)
    task_tip = commit_file(wt, "a.txt", "a\n")
    old = head(repo, "main")

    sha = await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert parents(repo, sha) == [old, task_tip]
    assert (base_wt / "a.txt").read_text() == "a\n"
    assert not (repo / "a.txt").exists()
    assert await g.status(base_wt) == []


async def test_merge_into_a_base_checked_out_nowhere_moves_only_the_ref(repo: Path, tmp_path: Path) -> None:
    git(repo, "switch", "-q", "-c", "elsewhere")
    wt = await task_worktree(repo, tmp_path)
    task_tip = commit_file(wt, "a.txt", "a\n")
    old = head(repo, "main")

    sha = await g.merge_into(repo, "main", "task-1", "Merge task #1: add a")
    assert head(repo, "main") == sha
    assert parents(repo, sha) == [old, task_tip]
    assert subject(repo, sha) == "Merge task #1: add a"
    assert git(repo, "show", f"{sha}:a.txt") == "a\n"
    # The checkout (on another branch) is untouched, and the temporary worktree is gone.
    assert await g.current_branch(repo) == "elsewhere" and not (repo / "a.txt").exists()
    assert await g.status(repo) == []
    assert worktrees(repo) == [str(repo), str(wt)]
    assert "merge" in git(repo, "reflog", "-1", "--format=%gs", "refs/heads/main").lower()


async def test_merge_into_fails_rather_than_overwrite_a_base_that_moved_meanwhile(repo: Path, tmp_path: Path) -> None:
    """Compare-and-swap: a commit that lands on the base while the merge runs is never lost."""
    git(repo, "switch", "-q", "-c", "elsewhere")
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    # Someone else's commit on main, made while the merge runs (from git's own post-merge hook).
    git(repo, "switch", "-q", "main")
    intruder = commit_file(repo, "b.txt", "b\n", "someone else's work")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "switch", "-q", "elsewhere")
    hook = Path(git(repo, "rev-parse", "--git-path", "hooks").strip())
    hook = hook if hook.is_absolute() else repo / hook
    hook.mkdir(exist_ok=True)
    (hook / "post-merge").write_text(
        "#!/bin/sh\nunset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n"
        f"exec git -C '{repo}' update-ref refs/heads/main {intruder}\n"
    )
    (hook / "post-merge").chmod(0o755)

    with pytest.raises(g.GitError):
        await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert head(repo, "main") == intruder
    assert worktrees(repo) == [str(repo), str(wt)]


async def test_merge_conflict_in_a_checked_out_base_leaves_it_unchanged(repo: Path, tmp_path: Path) -> None:
    await conflicting(repo, tmp_path)
    old = head(repo, "main")

    with pytest.raises(g.MergeConflict) as caught:
        await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert caught.value.files == ["shared.txt"]
    assert head(repo, "main") == old
    assert await g.status(repo) == []
    assert not git_path(repo, "MERGE_HEAD").exists()
    assert (repo / "shared.txt").read_text() == "main's line\n"


async def test_merge_conflict_in_a_base_checked_out_nowhere_leaves_it_unchanged(repo: Path, tmp_path: Path) -> None:
    wt = await conflicting(repo, tmp_path)
    git(repo, "switch", "-q", "-c", "elsewhere")
    old = head(repo, "main")

    with pytest.raises(g.MergeConflict) as caught:
        await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert caught.value.files == ["shared.txt"]
    assert head(repo, "main") == old
    assert worktrees(repo) == [str(repo), str(wt)]


async def test_merge_into_leaves_a_merge_of_someone_else_in_the_base_checkout_alone(repo: Path, tmp_path: Path) -> None:
    """The base's checkout is mid-merge (a person resolving by hand): refuse, and abort nothing of theirs."""
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    git(repo, "switch", "-q", "-c", "theirs")
    commit_file(repo, "shared.txt", "their line\n")
    git(repo, "switch", "-q", "main")
    old = commit_file(repo, "shared.txt", "main's line\n")
    done = await g.run(repo, "merge", "theirs", check=False)
    assert done.code != 0 and await g.unmerged(repo) == ["shared.txt"]
    (repo / "shared.txt").write_text("resolved by hand\n")  # not added yet: still unmerged

    with pytest.raises(g.GitError) as caught:
        await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert not isinstance(caught.value, g.MergeConflict)
    assert head(repo, "main") == old
    assert git_path(repo, "MERGE_HEAD").exists()
    assert (repo / "shared.txt").read_text() == "resolved by hand\n"

    git(repo, "add", "shared.txt")  # resolved, not committed yet: still theirs to conclude
    with pytest.raises(g.GitError):
        await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert git_path(repo, "MERGE_HEAD").exists()
    assert git(repo, "show", ":shared.txt") == "resolved by hand\n"


async def test_merge_into_refuses_to_overwrite_local_changes_in_the_base_checkout(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "shared.txt", "the task's line\n")
    (repo / "shared.txt").write_text("not committed yet\n")
    old = head(repo, "main")

    with pytest.raises(g.GitError) as caught:
        await g.merge_into(repo, "main", "task-1", "Merge task #1")
    assert not isinstance(caught.value, g.MergeConflict)
    assert head(repo, "main") == old
    assert (repo / "shared.txt").read_text() == "not committed yet\n"


# ---------------------------------------------------------------------------------------
# Bringing the base into a task


async def test_rebase_without_conflict_moves_the_branch_onto_the_base(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n", "task adds a")
    main_tip = commit_file(repo, "b.txt", "b\n", "main adds b")

    assert await g.rebase(wt, "main") == []
    assert parents(wt, "HEAD") == [main_tip]
    assert subject(wt, "HEAD") == "task adds a"
    assert await g.current_branch(wt) == "task-1"
    assert (wt / "b.txt").exists() and await g.status(wt) == []


async def test_rebase_with_conflict_is_aborted_and_the_branch_is_exactly_as_before(repo: Path, tmp_path: Path) -> None:
    wt = await conflicting(repo, tmp_path)
    before = head(wt)

    assert await g.rebase(wt, "main") == ["shared.txt"]
    assert head(wt) == head(repo, "task-1") == before
    assert await g.current_branch(wt) == "task-1"
    assert await g.status(wt) == []
    assert (wt / "shared.txt").read_text() == "the task's line\n"
    assert not git_path(wt, "rebase-merge").exists() and not git_path(wt, "rebase-apply").exists()


async def test_rebase_with_conflict_can_be_left_in_progress(repo: Path, tmp_path: Path) -> None:
    wt = await conflicting(repo, tmp_path)
    assert await g.rebase(wt, "main", abort_on_conflict=False) == ["shared.txt"]
    assert git_path(wt, "rebase-merge").exists()
    assert "<<<<<<<" in (wt / "shared.txt").read_text()


async def test_merge_in_leaves_conflict_markers_and_the_merge_open(repo: Path, tmp_path: Path) -> None:
    wt = await conflicting(repo, tmp_path)
    before = head(wt)

    assert await g.merge_in(wt, "main") == ["shared.txt"]
    text = (wt / "shared.txt").read_text()
    assert "<<<<<<<" in text and "the task's line" in text and "main's line" in text and ">>>>>>>" in text
    assert head(wt) == before
    assert git_path(wt, "MERGE_HEAD").exists()
    assert await g.unmerged(wt) == ["shared.txt"]


async def test_merge_in_of_what_is_already_merged_changes_nothing(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    before = head(wt)
    assert await g.merge_in(wt, "main") == []
    assert head(wt) == before and await g.commit_all(wt, "nothing") is None


# ---------------------------------------------------------------------------------------
# Local excludes


async def test_exclude_is_idempotent_shared_by_worktrees_and_takes_effect(repo: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    exclude = repo / ".git" / "info" / "exclude"
    exclude.write_text("# existing\n*.log")  # no newline at the end

    await g.exclude(repo, "/.tasks/")
    await g.exclude(wt, "/.tasks/")  # from a worktree: the same, shared file
    await g.exclude(repo, "/.tasks/")
    assert exclude.read_text() == "# existing\n*.log\n/.tasks/\n"

    (repo / ".tasks").mkdir()
    (repo / ".tasks" / "x.txt").write_text("x\n")
    assert await g.status(repo) == []
    assert git(repo, "status", "--porcelain") == ""  # nothing committed: .gitignore is untouched
    assert not (repo / ".gitignore").exists()


async def test_exclude_creates_the_file_when_missing(repo: Path) -> None:
    info = repo / ".git" / "info"
    for path in info.iterdir():
        path.unlink()
    info.rmdir()
    await g.exclude(repo, "/.tasks/")
    await g.exclude(repo, "/.tasks/")
    assert (info / "exclude").read_text() == "/.tasks/\n"


# ---------------------------------------------------------------------------------------
# Names: spaces, non-ASCII letters and shell syntax are only ever data


async def test_a_whole_task_cycle_with_spaces_and_unicode_in_names(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "work trees" / "tâche n°1 ☃"
    await g.worktree_add(repo, wt, "tâche/ünï-1", "main")
    (wt / "dossier é").mkdir()
    (wt / "dossier é" / "fichier ü.txt").write_text("bonjour\n")
    sha = await g.commit_all(wt, "Tâche: « bonjour »")
    assert sha is not None and subject(wt, sha) == "Tâche: « bonjour »"
    assert await g.worktree_of(repo, "tâche/ünï-1") == str(wt)
    assert await g.changed_files(repo, "main", "tâche/ünï-1") == ["dossier é/fichier ü.txt"]

    merged = await g.merge_into(repo, "main", "tâche/ünï-1", "Merge tâche #1: « bonjour »")
    assert subject(repo, merged) == "Merge tâche #1: « bonjour »"
    await g.worktree_remove(repo, wt)
    await g.branch_delete(repo, "tâche/ünï-1")
    assert not wt.exists() and not await g.branch_exists(repo, "tâche/ünï-1")
    assert (repo / "dossier é" / "fichier ü.txt").read_text() == "bonjour\n"


async def test_nothing_goes_through_a_shell(repo: Path, tmp_path: Path, monkeypatch) -> None:
    """Shell syntax in paths, branch names, messages and file names is passed to git as it is."""
    monkeypatch.chdir(tmp_path)
    evil = "$(touch${IFS}pwned1);`touch${IFS}pwned2`|touch${IFS}pwned3&>pwned4"
    branch = f"task-{evil}"
    wt = tmp_path / f"wt {evil} 'quoted' \"double\""
    await g.worktree_add(repo, wt, branch, "main")
    (wt / f"file {evil}.txt").write_text("x\n")
    assert await g.status(wt) == [f"file {evil}.txt"]
    sha = await g.commit_all(wt, f"message {evil}")
    assert sha is not None and subject(wt, sha) == f"message {evil}"
    await g.exclude(wt, f"/{evil}/")
    git(repo, "switch", "-q", "-c", "elsewhere")
    merged = await g.merge_into(repo, "main", branch, f"Merge {evil}")
    assert subject(repo, merged) == f"Merge {evil}"
    assert await g.changed_files(repo, f"{merged}~1", merged) == [f"file {evil}.txt"]
    await g.worktree_remove(repo, wt)
    await g.branch_delete(repo, branch, force=True)

    assert not wt.exists() and not await g.branch_exists(repo, branch)
    assert f"/{evil}/" in (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert [p for p in tmp_path.rglob("pwned*")] == []
    assert [p for p in Path.cwd().glob("pwned*")] == []


# ---------------------------------------------------------------------------------------
# Remotes and pushing (a bare repository in tmp_path is the remote)


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    return bare_remote(tmp_path / "remote.git", repo)


def refuse_pushes(bare: Path, script: str) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{script}\n")
    hook.chmod(0o755)


async def test_remote_urls_are_read(repo: Path, remote: Path) -> None:
    git(repo, "remote", "set-url", "--push", "origin", "/elsewhere.git")
    assert await g.remote_url(repo, "origin") == str(remote)
    assert await g.remote_url(repo, "origin", push=True) == "/elsewhere.git"
    assert g.remote_url_now(repo, "origin") == str(remote)
    assert await g.remote_url(repo, "upstream") is None and g.remote_url_now(repo, "upstream") is None


async def test_push_sends_the_branch_and_later_a_fast_forward(repo: Path, remote: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    first = commit_file(wt, "a.txt", "a\n")
    await g.push(repo, "origin", "task-1")
    assert head(remote, "task-1") == first
    second = commit_file(wt, "b.txt", "b\n")
    await g.push(repo, "origin", "task-1")
    assert head(remote, "task-1") == second


async def test_a_rebased_branch_replaces_only_what_was_pushed(repo: Path, remote: Path, tmp_path: Path) -> None:
    wt = await task_worktree(repo, tmp_path)
    pushed = commit_file(wt, "a.txt", "a\n")
    await g.push(repo, "origin", "task-1")
    commit_file(repo, "main.txt", "main moved\n")
    assert await g.rebase(wt, "main") == []
    with pytest.raises(g.GitError, match="rejected") as refused:
        await g.push(repo, "origin", "task-1")  # not a fast-forward
    assert "non-fast-forward" in refused.value.err or "fetch first" in refused.value.err
    await g.push(repo, "origin", "task-1", expect=pushed)
    assert head(remote, "task-1") == head(wt)
    # Someone else pushed to it meanwhile: their commit is not overwritten.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", "-b", "task-1", str(remote), str(other))
    theirs = commit_file(other, "theirs.txt", "theirs\n")
    git(other, "push", "-q", "origin", "task-1")
    commit_file(wt, "c.txt", "c\n")
    with pytest.raises(g.GitError, match="stale info"):
        await g.push(repo, "origin", "task-1", expect=head(wt, "HEAD~1"))
    assert head(remote, "task-1") == theirs


async def test_a_refused_push_carries_gits_own_words(repo: Path, remote: Path, tmp_path: Path) -> None:
    refuse_pushes(remote, 'echo "pushes are closed today" >&2; exit 1')
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    with pytest.raises(g.GitError) as refused:
        await g.push(repo, "origin", "task-1")
    assert "pushes are closed today" in refused.value.err and "pre-receive hook declined" in refused.value.err
    assert git(remote, "branch", "--list", "task-1") == ""


async def test_a_push_that_hangs_is_ended_with_what_it_started(repo: Path, remote: Path, tmp_path: Path) -> None:
    refuse_pushes(remote, f"echo $$ > {tmp_path}/hook.pid; sleep 60")
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    with pytest.raises(g.GitError, match="no answer within 1 seconds"):
        await g.push(repo, "origin", "task-1", timeout=1)
    hook = int((tmp_path / "hook.pid").read_text())
    assert_all_gone([hook])  # killed with git's group; on a busy machine it takes a moment to die


async def test_a_push_whose_caller_gives_up_is_ended_with_what_it_started(
    repo: Path, remote: Path, tmp_path: Path
) -> None:
    # A task stopped, or the server stopping, while its branch is pushed: nothing of git stays.
    refuse_pushes(remote, f"echo $$ > {tmp_path}/hook.pid; sleep 60")
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    push = asyncio.create_task(g.push(repo, "origin", "task-1"))
    for _ in range(500):
        if (tmp_path / "hook.pid").exists() and (tmp_path / "hook.pid").read_text().strip():
            break
        await asyncio.sleep(0.02)
    push.cancel()
    with pytest.raises(asyncio.CancelledError):
        await push
    hook = int((tmp_path / "hook.pid").read_text())
    assert_all_gone([hook])  # killed with git's group; on a busy machine it takes a moment to die


async def test_a_push_runs_no_local_hook(repo: Path, remote: Path, tmp_path: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/pre-push-ran\nexit 1\n")
    hook.chmod(0o755)
    wt = await task_worktree(repo, tmp_path)
    commit_file(wt, "a.txt", "a\n")
    await g.push(repo, "origin", "task-1")
    assert not (tmp_path / "pre-push-ran").exists()


async def test_exclude_writes_nothing_through_a_link_in_the_git_folder(repo: Path, tmp_path: Path) -> None:
    """The git folder lies in the agent's working directory: a link it put where info/exclude is
    is replaced by the file, and what it pointed to is neither read nor written."""
    secret = tmp_path / "secret-key.txt"
    secret.write_text("SERVER-SECRET")
    exclude = repo / ".git" / "info" / "exclude"
    exclude.unlink()
    exclude.symlink_to(secret)

    await g.exclude(repo, "/.tasks/")

    assert secret.read_text() == "SERVER-SECRET"
    assert not exclude.is_symlink() and exclude.read_text() == "/.tasks/\n"
    info = repo / ".git" / "info"
    exclude.unlink()
    info.rmdir()
    info.symlink_to(tmp_path)
    with pytest.raises(OSError, match="info is a symbolic link"):
        await g.exclude(repo, "/.tasks/")
    assert not (tmp_path / "exclude").exists() and secret.read_text() == "SERVER-SECRET"
