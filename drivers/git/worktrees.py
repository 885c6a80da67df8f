"""Repositories, branches, worktrees, status and commits, each in a named :class:`Repo`.

Files the server itself handles in a repository's folders (a worktree's folder, the
``.gitignore`` of the worktrees' folder) are handled without following a link: inside the
repository's sandbox if it has one, else only where no component of the path is a link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from .running import GitError, Repo, run, run_now, run_program

# Reads each worktree's record (``<common>/worktrees/<name>/gitdir``: where its ``.git`` is),
# without following a link, and never more than a path's worth of a file.
_RECORDS = r"""
cd "$1/worktrees" 2>/dev/null || exit 0
for name in *; do
  [ -d "$name" ] && [ ! -L "$name" ] && [ -f "$name/gitdir" ] && [ ! -L "$name/gitdir" ] || continue
  printf '%s\0' "$name"; head -c 4096 "$name/gitdir"; printf '\0'
done
"""


def is_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def has_no_links(path: str | os.PathLike[str]) -> bool:
    """Whether no component of the absolute ``path`` is a symbolic link (what it names may be missing)."""
    absolute = os.path.abspath(path)
    return os.path.realpath(absolute) == absolute


def is_folder_below(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder reached from ``root`` through folders only, not links."""
    top, target = Path(root), Path(path)
    try:
        parts = target.relative_to(top).parts
    except ValueError:
        return False
    current = top
    for part in parts:
        current = current / part
        if not is_folder(current):
            return False
    return is_folder(top)


def start_repository(repo: Repo, *, branch: str = "main", message: str = "Start") -> None:
    """Make ``repo`` (its folder exists) a repository with one empty commit on ``branch``, so that
    tasks can branch off it. Synchronous: it runs where a folder is set up, once."""
    assert repo.work_tree is not None
    run_now(repo, "init", "-q", "-b", branch)
    run_now(repo, "commit", "-q", "--allow-empty", "--no-verify", "-m", message, author=True)


async def is_repository(repo: Repo) -> bool:
    """Whether ``repo``'s git directory is one git works with."""
    return (await run(repo, "rev-parse", "--git-dir", check=False)).code == 0


async def current_branch(repo: Repo) -> str:
    done = await run(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return done.out.strip() if done.code == 0 else ""


async def rev(repo: Repo, ref: str) -> str:
    return (await run(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")).out.strip()


async def branch_exists(repo: Repo, branch: str) -> bool:
    done = await run(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return done.code == 0


async def branch_delete(repo: Repo, branch: str, *, force: bool = False) -> None:
    if await branch_exists(repo, branch):
        await run(repo, "branch", "-D" if force else "-d", "--", branch)


async def ignore_folder(repo: Repo, name: str) -> None:
    """Make the folder ``name`` at the top of ``repo`` (if missing) and keep git's eye off everything
    in it with a ``.gitignore`` of ``*`` there: nothing is committed, nothing in ``.git`` is written."""
    folder = repo.root / name
    if repo.jail is None:
        make_ignored_folder(folder)
        return
    script = (
        'mkdir -p -- "$1" && { [ -e "$1/.gitignore" ] || [ -L "$1/.gitignore" ] || printf "*\\n" > "$1/.gitignore"; }'
    )
    await run_program(repo, ["sh", "-c", script, "sh", str(folder)])


def make_ignored_folder(folder: Path) -> None:
    """:func:`ignore_folder` where no agent can write: the server makes it, following no link."""
    if not has_no_links(folder):
        raise GitError(
            ["ignore", folder.name], 1, "", f"{folder} is reached through a symbolic link; it must be a folder"
        )
    with contextlib.suppress(FileExistsError):
        folder.mkdir()
    if not is_folder(folder):
        raise GitError(["ignore", folder.name], 1, "", f"{folder} is not a folder")
    with contextlib.suppress(FileExistsError):
        fd = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write("*\n")


async def worktree_add(repo: Repo, path: str | os.PathLike[str], branch: str, base: str | None = None) -> Repo:
    """A new worktree at ``path``: on a new branch ``branch`` starting at ``base``, or (no ``base``)
    on the existing ``branch``. Returns it, with the git directory git made for it."""
    if base is None:
        await run(repo, "worktree", "add", "--", str(path), branch)
    else:
        await run(repo, "worktree", "add", "-b", branch, "--", str(path), base)
    found = await find_worktree(repo, path)
    if found is None:
        raise GitError(["worktree", "add"], 1, "", f"git made no record of the worktree {path}")
    return found


async def worktree_records(repo: Repo) -> dict[str, Repo]:
    """Every linked worktree git keeps a record of, by the path of its folder."""
    common = repo.common_dir
    done = await run_program(repo, ["sh", "-c", _RECORDS, "sh", str(common)])
    fields = done.out.split("\0")
    found: dict[str, Repo] = {}
    for name, gitfile in zip(fields[0::2], fields[1::2], strict=False):
        folder = os.path.dirname(gitfile.strip())
        if name and folder:
            found[folder] = repo.main.worktree(folder, name)
    return found


async def find_worktree(repo: Repo, path: str | os.PathLike[str]) -> Repo | None:
    """The linked worktree whose folder is ``path``, as git's own record names it."""
    records = await worktree_records(repo)
    return records.get(str(path)) or records.get(os.path.realpath(path))


async def worktree_of(repo: Repo, branch: str) -> Repo | None:
    """The worktree where ``branch`` is checked out (the repository's own one included), if any."""
    done = await run(repo, "worktree", "list", "--porcelain")
    path = None
    for line in done.out.splitlines():
        if line.startswith("worktree "):
            path = line[len("worktree ") :]
        elif line == f"branch refs/heads/{branch}" and path is not None:
            main = repo.main
            if main.work_tree is not None and os.path.realpath(path) == os.path.realpath(main.work_tree):
                return main
            return await find_worktree(repo, path)
    return None


async def worktree_prune(repo: Repo) -> None:
    await run(repo, "worktree", "prune", check=False)


async def worktree_remove(repo: Repo, path: str | os.PathLike[str]) -> None:
    """Remove the worktree's folder (whatever it holds) and git's record of it.

    Not ``git worktree remove``, which runs ``git status`` inside the folder: the folder is removed
    without following a link (``rm`` in the repository's sandbox, else fd-based), then the record
    is pruned."""
    if repo.jail is not None:
        await run_program(repo, ["rm", "-rf", "--", str(path)])
    else:
        _remove_folder(Path(path))
    await worktree_prune(repo)


def _remove_folder(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not has_no_links(path.parent):
        raise GitError(["remove", str(path)], 1, "", f"{path.parent} is reached through a symbolic link: not removed")
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)  # fd-based on Linux: never follows a link inside
    else:
        path.unlink()


# On the command line, this wins over what a .gitmodules in the agent's files says: git never looks
# into (and so never runs git in) a nested repository's work tree.
NO_SUBMODULES = "--ignore-submodules=all"


async def _entries(repo: Repo) -> list[tuple[str, str, str]]:
    """(status code, path, path it was renamed or copied from) of every change in the worktree."""
    done = await run(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", NO_SUBMODULES)
    found, entries = [], done.out.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path, source = entry[:2], entry[3:], ""
        if "R" in code or "C" in code:
            source = entries[i] if i < len(entries) else ""
            i += 1
        found.append((code, path, source))
    return found


async def status(repo: Repo) -> list[str]:
    """Paths with changes (staged, unstaged, untracked) relative to the worktree root; a nested
    repository is one entry, its name with a ``/``."""
    return [path for _code, path, _source in await _entries(repo)]


async def merging(repo: Repo) -> bool:
    return (await run(repo, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False)).code == 0


async def commit_all(repo: Repo, message: str) -> str | None:
    """Commit every change in the worktree (also concluding a merge in progress); None if there is
    nothing to commit.

    Nested repositories are left out: adding one would have git look into it (and run what its
    own ``.git`` says, with the server's powers in a shared project), and a commit of another
    repository's id is of no use to the task's branch anyway."""
    entries = await _entries(repo)
    # What differs between the index and the files (what is staged already needs no adding).
    paths = [path for code, path, _source in entries if code[1] != " " and not path.endswith("/")]
    staged = any(code[0] not in " ?" for code, _path, _source in entries)
    if not paths and not staged and not await merging(repo):
        return None
    if paths:
        await run(
            repo,
            "add",
            "--all",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            env={"GIT_LITERAL_PATHSPECS": "1"},
            input="\0".join(paths),
        )
    await run(repo, "commit", "--no-verify", "-q", "-m", message, author=True)
    return await rev(repo, "HEAD")
