"""Git worktrees and branches for tasks: a plain async module with no Django imports.

Every call is ``git -C <dir> ...`` through :func:`asyncio.create_subprocess_exec` with an argv
list (never a shell). Names of worktrees and branches are built by the caller from a task id.

Pushing a task's branch (:func:`push`) runs no hooks, has no terminal to prompt on, and takes
credentials only from git's own configuration or from configuration passed in its environment
(``GIT_CONFIG_COUNT``), never in its argv.

Merging uses ``--no-ff``: the base branch gets one merge commit per task ("Merge task #N: title"),
so a task's work can be found, reviewed and reverted as a unit. A merge is done where the base
branch is checked out; if it is checked out nowhere, in a temporary detached worktree, then the
branch ref is moved with a compare-and-swap ``update-ref``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import safefs

# No pager, no prompts, no editor, same messages whatever the locale.
_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", "GIT_PAGER": "cat", "LC_ALL": "C", "LANG": "C"}
_AUTHOR = {
    "GIT_AUTHOR_NAME": "Claude Code tasks",
    "GIT_AUTHOR_EMAIL": "tasks@localhost",
    "GIT_COMMITTER_NAME": "Claude Code tasks",
    "GIT_COMMITTER_EMAIL": "tasks@localhost",
}


class GitError(Exception):
    def __init__(self, argv: list[str], code: int, out: str, err: str) -> None:
        self.argv, self.code, self.out, self.err = argv, code, out, err
        super().__init__(f"git {' '.join(argv)} failed ({code}): {(err or out).strip()[-1000:]}")


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


# A timeout here (not a caller's asyncio.timeout) ends git with what it started (ssh) and says so.
async def run(
    cwd: str | os.PathLike[str],
    *args: str,
    check: bool = True,
    author: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109
    detached: bool = False,
) -> Done:
    """``git -C cwd args...``; ``env`` adds variables, ``timeout`` ends it (raising GitError),
    ``detached`` runs it without a controlling terminal (ssh cannot ask for a password)."""
    argv = ["-C", str(cwd), *args]
    full_env = {**os.environ, **_ENV, **(env or {})}
    if author:
        full_env.update(await _fallback_identity(cwd, full_env))
    proc = await asyncio.create_subprocess_exec(
        "git",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        start_new_session=detached,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await _end(proc, detached)
        raise GitError(list(args), -1, "", f"no answer within {timeout:g} seconds") from None
    except BaseException:
        # Cancelled (a task stopped, the server stopping): git must not outlive its caller.
        await asyncio.shield(_end(proc, detached))
        raise
    done = Done(proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if check and done.code:
        raise GitError((args and list(args)) or [], done.code, done.out, done.err)
    return done


async def _end(proc: asyncio.subprocess.Process, detached: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if detached:
            os.killpg(proc.pid, signal.SIGKILL)  # with what it started (ssh)
        else:
            proc.kill()
    await proc.wait()


async def _fallback_identity(cwd: str | os.PathLike[str], env: dict[str, str]) -> dict[str, str]:
    """The tasks' identity for what neither the environment nor git's configuration sets.

    Git ranks ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` above ``user.name``/``user.email``, so the
    fallback may only be set when the repository (or the user's global configuration) has none.
    """
    missing = {name: value for name, value in _AUTHOR.items() if name not in env}
    if not missing:
        return {}
    done = await run(cwd, "config", "--get-regexp", r"^user\.(name|email)$", check=False)
    configured = {line.split(" ", 1)[0].split(".", 1)[1].upper() for line in done.out.splitlines() if " " in line}
    return {name: value for name, value in missing.items() if name.rsplit("_", 1)[1] not in configured}


def start_repository(path: str | os.PathLike[str], *, branch: str = "main", message: str = "Start") -> None:
    """Make ``path`` (made if missing) a repository with one empty commit on ``branch``, so that
    tasks can branch off it. Synchronous: it runs where a folder is set up, once."""
    Path(path).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **_ENV, **{name: value for name, value in _AUTHOR.items() if name not in os.environ}}
    for args in (["init", "-q", "-b", branch], ["commit", "-q", "--allow-empty", "--no-verify", "-m", message]):
        done = subprocess.run(
            ["git", "-C", str(path), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode:
            raise GitError(args, done.returncode, done.stdout, done.stderr)


async def toplevel_of(path: str | os.PathLike[str]) -> str | None:
    """The top of the repository ``path`` is in (itself, or one around it); None if none."""
    if not Path(path).is_dir():
        return None
    done = await run(path, "rev-parse", "--show-toplevel", check=False)
    return done.out.strip() if done.code == 0 and done.out.strip() else None


async def is_toplevel(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is itself the top of a git work tree. A folder inside a repository is not:
    git would find the repository around it and work there (on its branches, in its files)."""
    top = await toplevel_of(path)
    return top is not None and Path(top).resolve() == Path(path).resolve()


def is_toplevel_now(path: str | os.PathLike[str]) -> bool:
    """:func:`is_toplevel` for synchronous callers."""
    if not Path(path).is_dir():
        return False
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, **_ENV},
        check=False,
    )
    return done.returncode == 0 and Path(done.stdout.strip()).resolve() == Path(path).resolve()


async def current_branch(repo: str | os.PathLike[str]) -> str:
    done = await run(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return done.out.strip() if done.code == 0 else ""


async def branch_exists(repo: str | os.PathLike[str], branch: str) -> bool:
    done = await run(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return done.code == 0


async def rev(repo: str | os.PathLike[str], ref: str) -> str:
    return (await run(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")).out.strip()


async def remote_url(repo: str | os.PathLike[str], remote: str, *, push: bool = False) -> str | None:
    """The (fetch, or with ``push`` the push) URL of ``remote``; None if there is no such remote."""
    done = await run(repo, "remote", "get-url", *(["--push"] if push else []), remote, check=False)
    return done.out.strip() if done.code == 0 else None


def remote_url_now(repo: str | os.PathLike[str], remote: str) -> str | None:
    """:func:`remote_url` (the fetch URL) for synchronous callers."""
    done = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", remote],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, **_ENV},
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def config_env(config: Mapping[str, str]) -> dict[str, str]:
    """git configuration as environment variables (``GIT_CONFIG_COUNT``/``_KEY_n``/``_VALUE_n``),
    after any the environment already holds: what ``-c`` does, without showing values in argv."""
    try:
        start = max(0, int(os.environ.get("GIT_CONFIG_COUNT", "0")))
    except ValueError:
        start = 0
    env = {"GIT_CONFIG_COUNT": str(start + len(config))}
    for index, (key, value) in enumerate(config.items(), start):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


async def push(
    repo: str | os.PathLike[str],
    remote: str,
    branch: str,
    *,
    expect: str | None = None,
    config: Mapping[str, str] | None = None,
    timeout: float = 300,  # noqa: ASYNC109
) -> None:
    """Push ``branch`` to the branch of the same name on ``remote`` (no hooks run).

    Without ``expect`` only a new branch or a fast-forward is pushed. With ``expect`` (the commit
    pushed last time) the remote's branch is replaced, e.g. by a rebased one, only if it still is
    at that commit (``--force-with-lease``): nobody else's commits are overwritten. ``config`` is
    git configuration for this push only (see :func:`config_env`). A refusal raises GitError with
    git's own words (``err``)."""
    ref = f"refs/heads/{branch}"
    lease = [f"--force-with-lease={ref}:{expect}"] if expect else []
    await run(
        repo,
        "push",
        "--no-verify",
        *lease,
        "--",
        remote,
        f"{ref}:{ref}",
        env=config_env(config or {}),
        timeout=timeout,
        detached=True,
    )


async def exclude(repo: str | os.PathLike[str], pattern: str) -> None:
    """Add ``pattern`` to the repository's local ``info/exclude`` (nothing is committed)."""
    common = (await run(repo, "rev-parse", "--git-common-dir")).out.strip()
    git_dir = os.path.normpath(common if os.path.isabs(common) else os.path.join(repo, common))
    # The git folder lies where an agent can write: the file is read and replaced beneath the
    # folder that holds it, no link followed (one there could lead to any file of the server's).
    root, name = os.path.dirname(git_dir), f"{os.path.basename(git_dir)}/info/exclude"
    try:
        text = safefs.read_bytes(root, name).decode()
    except (FileNotFoundError, safefs.LinkRefused, safefs.NotAFile):
        text = ""  # a link or a FIFO in its place is replaced, never read or written through
    if pattern not in text.splitlines():
        with safefs.replacing(root, name, mode=0o644, parents=True, sync=False) as out:
            out.write((text + ("" if not text or text.endswith("\n") else "\n") + pattern + "\n").encode())


async def worktree_add(repo: str | os.PathLike[str], path: str | os.PathLike[str], branch: str, base: str) -> None:
    """A new worktree at ``path`` on a new branch ``branch`` starting at ``base``."""
    await run(repo, "worktree", "add", "-b", branch, "--", str(path), base)


async def worktree_remove(repo: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    if Path(path).exists():
        await run(repo, "worktree", "remove", "--force", "--force", "--", str(path), check=False)
    await run(repo, "worktree", "prune", check=False)


async def branch_delete(repo: str | os.PathLike[str], branch: str, *, force: bool = False) -> None:
    if await branch_exists(repo, branch):
        await run(repo, "branch", "-D" if force else "-d", "--", branch)


async def status(worktree: str | os.PathLike[str]) -> list[str]:
    """Paths with changes (staged, unstaged, untracked) relative to the worktree root."""
    done = await run(worktree, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    paths, entries = [], done.out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        paths.append(path)
        if "R" in code or "C" in code:
            i += 1  # the source path of a rename follows
    return paths


async def commit_all(worktree: str | os.PathLike[str], message: str) -> str | None:
    """Commit everything in the worktree (also concluding a merge in progress); None if clean."""
    if not await status(worktree) and not await _merging(worktree):
        return None
    await run(worktree, "add", "--all")
    await run(worktree, "commit", "--no-verify", "-q", "-m", message, author=True)
    return await rev(worktree, "HEAD")


async def changed_files(repo: str | os.PathLike[str], base: str, branch: str) -> list[str]:
    """Files the branch changed since it left ``base`` (three-dot: the branch's own changes)."""
    done = await run(repo, "diff", "--name-only", "-z", f"{base}...{branch}", "--")
    return [p for p in done.out.split("\0") if p]


async def diff(repo: str | os.PathLike[str], base: str, branch: str, *, max_bytes: int = 2_000_000) -> str:
    """The branch's own changes since it left ``base`` (three-dot), as a patch."""
    return await _patch(repo, f"{base}...{branch}", max_bytes=max_bytes)


async def merge_diff(repo: str | os.PathLike[str], commit: str, *, max_bytes: int = 2_000_000) -> str:
    """What the merge ``commit`` brought into the branch it was made on (against its first parent)."""
    return await _patch(repo, f"{commit}^1", commit, max_bytes=max_bytes)


async def _patch(repo: str | os.PathLike[str], *revisions: str, max_bytes: int) -> str:
    text = (await run(repo, "diff", "--no-color", "--stat", "--patch", *revisions, "--")).out
    return text if len(text) <= max_bytes else text[:max_bytes] + "\n… (diff cut)\n"


async def find_merge(repo: str | os.PathLike[str], branch: str, subject_start: str) -> str | None:
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


async def log(repo: str | os.PathLike[str], base: str, branch: str) -> list[str]:
    return (await run(repo, "log", "--format=%h %s", f"{base}..{branch}", "--")).out.splitlines()


async def worktree_of(repo: str | os.PathLike[str], branch: str) -> str | None:
    """The worktree where ``branch`` is checked out, if any."""
    done = await run(repo, "worktree", "list", "--porcelain")
    path = None
    for line in done.out.splitlines():
        if line.startswith("worktree "):
            path = line[len("worktree ") :]
        elif line == f"branch refs/heads/{branch}":
            return path
    return None


async def unmerged(worktree: str | os.PathLike[str]) -> list[str]:
    done = await run(worktree, "diff", "--name-only", "-z", "--diff-filter=U", check=False)
    return [p for p in done.out.split("\0") if p]


class MergeConflict(Exception):
    def __init__(self, files: list[str]) -> None:
        self.files = files
        super().__init__("conflicts in " + ", ".join(files))


async def _merging(where: str | os.PathLike[str]) -> bool:
    return (await run(where, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)).code == 0


async def _merge_here(where: str | os.PathLike[str], branch: str, message: str) -> str:
    """``merge --no-ff`` in a checkout; on conflict abort it (nothing changes) and raise.

    Only a merge this call started is aborted: if the checkout was already in the middle of
    someone's merge, git refuses ours and theirs (with their resolutions) is left as it was.
    """
    theirs = await _merging(where)
    done = await run(where, "merge", "--no-ff", "--no-edit", "-m", message, "--", branch, check=False, author=True)
    if done.code:
        if theirs or not await _merging(where):
            raise GitError(["merge", branch], done.code, done.out, done.err)
        files = await unmerged(where)
        await run(where, "merge", "--abort", check=False)
        if files:
            raise MergeConflict(files)
        raise GitError(["merge", branch], done.code, done.out, done.err)
    return await rev(where, "HEAD")


async def merge_into(repo: str | os.PathLike[str], base: str, branch: str, message: str) -> str:
    """Merge ``branch`` into ``base`` with ``--no-ff``; raise MergeConflict (base unchanged) on conflict."""
    where = await worktree_of(repo, base)
    if where is not None:
        return await _merge_here(where, branch, message)
    # The base is checked out nowhere: merge in a throw-away worktree, then move the branch
    # only if nobody moved it meanwhile.
    old = await rev(repo, base)
    with tempfile.TemporaryDirectory(prefix="task-merge-") as tmp:
        tree = Path(tmp) / "wt"
        await run(repo, "worktree", "add", "--detach", "--", str(tree), old)
        try:
            new = await _merge_here(tree, branch, message)
            await run(repo, "update-ref", "-m", message, f"refs/heads/{base}", new, old)
            return new
        finally:
            await worktree_remove(repo, tree)


async def rebase(worktree: str | os.PathLike[str], onto: str, *, abort_on_conflict: bool = True) -> list[str]:
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


async def merge_in(worktree: str | os.PathLike[str], ref: str) -> list[str]:
    """Merge ``ref`` into the worktree's branch, leaving conflicts in the files: the conflicting files."""
    done = await run(worktree, "merge", "--no-ff", "--no-commit", "--", ref, check=False, author=True)
    if done.code == 0:
        return []
    files = await unmerged(worktree)
    if not files:
        raise GitError(["merge", ref], done.code, done.out, done.err)
    return files
