"""A workspace's git changes: status, a file's diff, stage, commit, discard, the branch and its
latest commits; and which names of a folder git ignores (the file tree folds them).

Git runs only as :mod:`drivers.git` runs it where an agent can write: in a member's own folder (and
its tasks' worktrees) inside the agents' sandbox, as their user, with no network; in a shared
project as the server on the git directory it made (no agent can write it). Every call names its
git directory (never a ``.git`` found in the folder), with hooks, filters and external programs off.
Paths are given after ``--`` with literal pathspecs: a file named ``*`` or ``:(glob)x`` is itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat.projects import OWN
from chat.toolcards import Line
from drivers import git, safefs
from drivers.git.worktrees import NO_SUBMODULES
from tasks.diffs import FileDiff, Patch, parse_patch
from tasks.services import places

from ..selectors import Place
from .files import FileRefused, _checked, _root
from .names import join

_LITERAL = {"GIT_LITERAL_PATHSPECS": "1"}
_DIFF = ("diff", "--no-ext-diff", "--no-textconv", "--no-color", NO_SUBMODULES)
RECENT_COMMITS = 15
MAX_MESSAGE = 10_000
# Names checked against git's ignore rules in one call (the tree shows at most this many per level).
MAX_CHECKED = 2000
_UNTRACKED_BYTES = 512 * 1024


@dataclass(frozen=True)
class Change:
    path: str
    staged: str  # git's index column: " " nothing, M, A, D, R, ...
    unstaged: str  # the work tree column; "?" untracked

    @property
    def untracked(self) -> bool:
        return self.staged == "?"

    @property
    def words(self) -> str:
        if self.untracked:
            return "new, not tracked"
        parts = []
        if self.staged not in " ?":
            parts.append(f"staged: {_WORDS.get(self.staged, self.staged)}")
        if self.unstaged not in " ?":
            parts.append(f"not staged: {_WORDS.get(self.unstaged, self.unstaged)}")
        return ", ".join(parts)


_WORDS = {
    "M": "modified",
    "A": "added",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "U": "conflict",
    "T": "type changed",
}


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    when: str
    subject: str


@dataclass(frozen=True)
class Changes:
    branch: str
    changes: list[Change]
    commits: list[Commit]
    error: str = ""


class ChangeRefused(FileRefused):
    """A git action that could not be done; the text says git's words and what to do."""


def repo_for(place: Place) -> git.Repo:
    """The place's repository as the server may run git there (see the module's text)."""
    if place.task is not None:
        return places.worktree_of(place.task)
    return places.repository(place.project or OWN, place.root)


def _refused(exc: git.GitError, what: str) -> ChangeRefused:
    said = (exc.err or exc.out).strip().splitlines()
    detail = said[-1][:300] if said else f"git stopped with code {exc.code}"
    return ChangeRefused(f"Could not {what}: {detail}", status=409)


async def ignored_names(*, place: Place, folder: str, names: list[str]) -> set[str]:
    """Which of ``names`` in ``folder`` git ignores (none where the folder is no repository)."""
    if not names:
        return set()
    paths = [join(folder, name) for name in names[:MAX_CHECKED] if name != ".git"]
    done = await git.run(
        repo_for(place),
        "-C",
        str(place.root),
        "check-ignore",
        "-z",
        "--stdin",
        check=False,
        # Not literal pathspecs: with them git matches no ignore rule at all (a name such as "*" may
        # then mark more than itself as ignored, which only folds it on the page).
        input="\0".join(paths) + "\0",
    )
    if done.code not in (0, 1):
        return set()
    return {path.rsplit("/", 1)[-1] for path in done.out.split("\0") if path}


async def overview(*, place: Place) -> Changes:
    """The branch, what changed (staged, not staged, untracked) and the latest commits."""
    repo = repo_for(place)
    try:
        branch = await git.current_branch(repo)
        done = await git.run(repo, "status", "--porcelain=v1", "-z", NO_SUBMODULES)
        logged = await git.run(
            repo, "log", f"-n{RECENT_COMMITS}", "--format=%h%x00%an%x00%ar%x00%s%x00", "--", check=False
        )
    except git.GitError as exc:
        return Changes(branch="", changes=[], commits=[], error=str(_refused(exc, "read the folder's git status")))
    return Changes(branch=branch or "(no branch)", changes=_parse_status(done.out), commits=_parse_log(logged.out))


def _parse_status(out: str) -> list[Change]:
    found, entries, i = [], out.split("\0"), 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if "R" in code or "C" in code:
            i += 1  # the name it came from
        found.append(Change(path=path, staged=code[0], unstaged=code[1]))
    return found


def _parse_log(out: str) -> list[Commit]:
    fields = out.split("\0")
    commits = []
    for n in range(0, len(fields) - 4, 4):
        sha, author, when, subject = (field.strip() for field in fields[n : n + 4])
        commits.append(Commit(sha=sha, author=author, when=when, subject=subject))
    return commits


async def file_diff(*, place: Place, path: str) -> Patch:
    """What changed in ``path``: staged and not staged against the last commit; an untracked file
    as all added."""
    path = _checked(path)
    repo = repo_for(place)
    try:
        tracked = await git.run(repo, "ls-files", "--error-unmatch", "--", path, check=False, env=_LITERAL)
        if tracked.code == 0:
            head = await git.run(repo, "rev-parse", "--verify", "-q", "HEAD", check=False)
            base = ["HEAD"] if head.code == 0 else ["--cached"]
            done = await git.run(repo, *_DIFF, *base, "--", path, env=_LITERAL)
        else:
            return _untracked(place, path)
    except git.GitError as exc:
        raise _refused(exc, f"show the changes of {path}") from None
    return parse_patch(done.out[:2_000_000])


def _untracked(place: Place, path: str) -> Patch:
    """A new file as all added, read as the file tree reads it (no link followed, no FIFO opened):
    git's ``--no-index`` would read what the path leads to."""
    shown = FileDiff(path=path, status="added")
    with _root(place) as root:
        try:
            data = safefs.read_bytes(root, path, limit=_UNTRACKED_BYTES)
        except OSError:
            shown.raw.append(Line("meta", "Not a regular file (a link, a folder or a special file): not shown"))
            return Patch(files=[shown], notes=[])
    if b"\0" in data[:8192]:
        shown.status = "binary"
        shown.raw.append(Line("meta", "Binary file: not shown"))
        return Patch(files=[shown], notes=[])
    lines = data.decode("utf-8", "replace").splitlines()
    shown.raw.extend(Line("add", f"+{line}") for line in lines)
    shown.added = len(lines)
    notes = ["(only the start of the file is shown)"] if len(data) >= _UNTRACKED_BYTES else []
    return Patch(files=[shown], notes=notes)


async def stage(*, place: Place, path: str) -> None:
    await _on_path(place, path, ("add", "--all"), "stage")


async def unstage(*, place: Place, path: str) -> None:
    await _on_path(place, path, ("reset", "-q"), "unstage")


async def _on_path(place: Place, path: str, command: tuple[str, ...], what: str) -> None:
    path = _checked(path)
    try:
        await git.run(repo_for(place), *command, "--", path, env=_LITERAL)
    except git.GitError as exc:
        raise _refused(exc, f"{what} {path}") from None


async def commit(*, place: Place, message: str, author: str, email: str) -> str:
    """Commit what is staged with ``message`` as ``author``; the new commit's short id."""
    message = message.strip()
    if not message:
        raise ChangeRefused("Write a commit message first.")
    if len(message) > MAX_MESSAGE or "\0" in message:
        raise ChangeRefused(f"A commit message may have at most {MAX_MESSAGE:,} characters and no NUL.")
    repo = repo_for(place)
    identity = {
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": email,
    }
    staged = await git.run(repo, "diff", "--cached", "--quiet", NO_SUBMODULES, check=False)
    if staged.code == 0:
        raise ChangeRefused("Nothing is staged: stage the files to commit first.", status=409)
    try:
        # The message on stdin: never read as an option, whatever it starts with.
        await git.run(repo, "commit", "--no-verify", "-q", "-F", "-", env=identity, input=message)
        return (await git.run(repo, "rev-parse", "--short", "HEAD")).out.strip()
    except git.GitError as exc:
        raise _refused(exc, "commit") from None


async def discard(*, place: Place, path: str) -> None:
    """Throw away a file's changes: a file of the last commit back to it; one added since (staged
    or not) removed."""
    path = _checked(path)
    repo = repo_for(place)
    try:
        committed = await git.run(repo, "ls-tree", "--name-only", "HEAD", "--", path, check=False, env=_LITERAL)
        if committed.code == 0 and committed.out.strip():
            await git.run(repo, "checkout", "-q", "HEAD", "--", path, env=_LITERAL)
            return
        # Staged but never committed: out of the index, then removed as an untracked file is.
        await git.run(repo, "rm", "-q", "--cached", "--ignore-unmatch", "--", path, env=_LITERAL)
    except git.GitError as exc:
        raise _refused(exc, f"discard the changes of {path}") from None
    with _root(place) as root:
        try:
            safefs.remove_tree(root, path)
        except OSError as exc:
            raise ChangeRefused(f"Could not remove {path}: {exc.strerror}", status=409) from None
