"""What a branch changed, merging it into its base, and bringing the base into it.

Merging uses ``--no-ff``: the base branch gets one merge commit per task ("Merge task #N: title"),
so a task's work can be found, reviewed and reverted as a unit. The merge is computed without a
checkout (``git merge-tree --write-tree``, then ``commit-tree``): nothing has to be kept between
steps in a temporary folder (a sandbox's ``/tmp`` is its own, each call). The base branch then
moves to it: where it is checked out, as a fast-forward of that checkout; where it is not, by a
compare-and-swap ``update-ref``. Either way, a base that moved meanwhile is never overwritten.

Diffs never run an external diff program or a textconv filter, nor look into nested repositories.
"""

from __future__ import annotations

from .running import GitError, Repo, run
from .worktrees import NO_SUBMODULES, rev, worktree_of

_DIFF = ("diff", "--no-ext-diff", "--no-textconv", NO_SUBMODULES)


class MergeConflict(Exception):
    def __init__(self, files: list[str]) -> None:
        self.files = files
        super().__init__("conflicts in " + ", ".join(files))


async def changed_files(repo: Repo, base: str, branch: str) -> list[str]:
    """Files the branch changed since it left ``base`` (three-dot: the branch's own changes)."""
    done = await run(repo, *_DIFF, "--name-only", "-z", f"{base}...{branch}", "--")
    return [p for p in done.out.split("\0") if p]


async def diff(
    repo: Repo, base: str, branch: str, *, max_bytes: int = 2_000_000, ignore_line_endings: bool = False
) -> str:
    """The branch's own changes since it left ``base`` (three-dot), as a patch. ``ignore_line_endings``:
    a line whose only change is a carriage return added or dropped at its end is not a change."""
    flags = ("--ignore-cr-at-eol",) if ignore_line_endings else ()
    return await _patch(repo, *flags, f"{base}...{branch}", max_bytes=max_bytes)


async def merge_diff(repo: Repo, commit: str, *, max_bytes: int = 2_000_000) -> str:
    """What the merge ``commit`` brought into the branch it was made on (against its first parent)."""
    return await _patch(repo, f"{commit}^1", commit, max_bytes=max_bytes)


async def _patch(repo: Repo, *revisions: str, max_bytes: int) -> str:
    text = (await run(repo, *_DIFF, "--no-color", "--stat", "--patch", *revisions, "--")).out
    return text if len(text) <= max_bytes else text[:max_bytes] + "\n… (diff cut)\n"


async def find_merge(repo: Repo, branch: str, subject_start: str) -> str | None:
    """The newest merge commit on ``branch`` whose message starts with ``subject_start``, if any."""
    done = await run(
        repo,
        "log",
        "--merges",
        "--format=%H %s",
        "--fixed-strings",
        f"--grep={subject_start}",
        branch,
        "--",
        check=False,
    )
    for line in done.out.splitlines():
        commit, _, subject = line.partition(" ")
        if subject.startswith(subject_start):
            return commit
    return None


async def log(repo: Repo, base: str, branch: str) -> list[str]:
    return (await run(repo, "log", "--format=%h %s", f"{base}..{branch}", "--")).out.splitlines()


async def unmerged(repo: Repo) -> list[str]:
    done = await run(repo, *_DIFF, "--name-only", "-z", "--diff-filter=U", check=False)
    return [p for p in done.out.split("\0") if p]


async def merge_into(repo: Repo, base: str, branch: str, message: str) -> str:
    """Merge ``branch`` into ``base`` with a merge commit; raise MergeConflict (base unchanged) on conflict."""
    old, theirs = await rev(repo, base), await rev(repo, branch)
    done = await run(repo, "merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", old, theirs, check=False)
    fields = done.out.split("\0")
    if done.code == 1:
        raise MergeConflict(sorted({name for name in fields[1:] if name}))
    if done.code:
        raise GitError(["merge-tree", base, branch], done.code, done.out, done.err)
    tree = fields[0].strip()
    new = (await run(repo, "commit-tree", tree, "-p", old, "-p", theirs, "-m", message, author=True)).out.strip()
    checkout = await worktree_of(repo, base)
    if checkout is None:
        await run(repo, "update-ref", "-m", message, f"refs/heads/{base}", new, old)
    else:
        # The checkout follows, as a fast-forward: refused if the base moved meanwhile, if a merge of
        # someone's is in progress there, or if its uncommitted changes would be overwritten.
        await run(checkout, "merge", "--ff-only", "--no-edit", new)
    return new


async def rebase(worktree: Repo, onto: str, *, abort_on_conflict: bool = True) -> list[str]:
    """Rebase the worktree's branch onto ``onto``: [] if clean, else the conflicting files.

    On conflict the rebase is aborted (the branch is exactly as before) unless
    ``abort_on_conflict`` is False, which leaves it in progress for someone to resolve.
    """
    done = await run(worktree, "rebase", "--no-autostash", onto, check=False, author=True)
    if done.code == 0:
        return []
    files = await unmerged(worktree)
    if abort_on_conflict:
        await run(worktree, "rebase", "--abort", check=False)
    if not files:
        raise GitError(["rebase", onto], done.code, done.out, done.err)
    return files


async def merge_in(worktree: Repo, ref: str) -> list[str]:
    """Merge ``ref`` into the worktree's branch, leaving conflicts in the files: the conflicting files."""
    done = await run(worktree, "merge", "--no-ff", "--no-commit", "--", ref, check=False, author=True)
    if done.code == 0:
        return []
    files = await unmerged(worktree)
    if not files:
        raise GitError(["merge", ref], done.code, done.out, done.err)
    return files


async def merge_abort(worktree: Repo) -> None:
    """Abort a merge left in progress (a conflict handed to the agent), if there is one."""
    await run(worktree, "merge", "--abort", check=False)
