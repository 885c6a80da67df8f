"""Running git in a named place, with no more power than whoever can write there.

A :class:`Repo` names the git directory the server made and the files it belongs to; git is
never left to find a ``.git`` by itself (an agent can rewrite a worktree's ``.git`` file to point
at a repository of its own). ``jail`` says how git must run there: inside a sandbox like the
agent's (its folder writable, no network, an environment of only what git needs) where an agent
can write the git directory, or as the server itself (None) where no agent can.

Every call, in a sandbox or not, also carries :data:`HARDENING`: no hooks, no fsmonitor, no
external diff, no submodule recursion, no signing programs. Given with ``-c``, these reach git's
own child processes too (``GIT_CONFIG_PARAMETERS``), also a ``git status`` that git runs inside a
nested repository an agent planted. The system's and the server user's git configuration are left
out (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL``), except for a push, which may need the server's
credential helpers. None of this is enough alone where an agent writes ``.git/config`` (a filter
driver, ``include.path``: keys no list foresees): that is what the sandbox is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from drivers.claude.proctree import descendants, end_tree
from drivers.claude.sandbox import Sandbox, launch

# Given as ``-c`` on every call (see the module's text).
HARDENING = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "diff.external=",
    "safe.bareRepository=explicit",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "submodule.recurse=false",
    "core.pager=cat",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "log.showSignature=false",
    "merge.verifySignatures=false",
)
# No pager, no prompts, no editor, same messages whatever the locale; the server's own git
# configuration (system, global) stays out.
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "LC_ALL": "C",
    "LANG": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
_OWN_CONFIG = ("GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL")
AUTHOR = {
    "GIT_AUTHOR_NAME": "Claude Code tasks",
    "GIT_AUTHOR_EMAIL": "tasks@localhost",
    "GIT_COMMITTER_NAME": "Claude Code tasks",
    "GIT_COMMITTER_EMAIL": "tasks@localhost",
}
JAIL_PATH = "/usr/local/bin:/usr/bin:/bin"
# Where an agent wrote the .git, what git runs may never end (a filter that sleeps): a task would
# hold its slot, which other members wait for, for ever. Ended after this long, saying so.
SANDBOX_TIMEOUT = 600.0


class GitError(Exception):
    def __init__(self, argv: list[str], code: int, out: str, err: str) -> None:
        self.argv, self.code, self.out, self.err = argv, code, out, err
        super().__init__(f"git {' '.join(argv)} failed ({code}): {(err or out).strip()[-1000:]}")


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Repo:
    """Where git works: ``git_dir`` (made by git for the server: a repository's ``.git`` folder, or
    a worktree's ``<common>/worktrees/<name>``), ``work_tree`` its files, ``jail`` how git runs
    there (see the module's text). ``common`` is the repository's own git directory when
    ``git_dir`` is a worktree's."""

    git_dir: Path
    work_tree: Path | None = None
    jail: Sandbox | None = None
    common: Path | None = None

    @classmethod
    def at(cls, folder: str | os.PathLike[str], *, jail: Sandbox | None = None) -> Repo:
        """The repository whose git directory is ``folder/.git``: never one a ``.git`` file names,
        nor one found in a folder around it."""
        root = Path(folder)
        return cls(root / ".git", root, jail)

    @property
    def common_dir(self) -> Path:
        return self.common or self.git_dir

    @property
    def root(self) -> Path:
        """The folder of the repository's main work tree (where git runs from)."""
        return self.common_dir.parent

    def worktree(self, path: str | os.PathLike[str], name: str | None = None) -> Repo:
        """The linked worktree at ``path`` whose git directory is ``<common>/worktrees/<name>``
        (by default the folder's name, as git names it when that name is free)."""
        folder = Path(path)
        return Repo(self.common_dir / "worktrees" / (name or folder.name), folder, self.jail, self.common_dir)

    @property
    def main(self) -> Repo:
        """The repository a worktree belongs to (itself if it is one)."""
        return self if self.common is None else Repo(self.common, self.common.parent, self.jail)


def git_argv(repo: Repo, args: Sequence[str]) -> list[str]:
    argv = ["git", "--no-pager", f"--git-dir={repo.git_dir}"]
    if repo.work_tree is not None:
        argv.append(f"--work-tree={repo.work_tree}")
    for setting in HARDENING:
        argv += ["-c", setting]
    return [*argv, *args]


def _environment(repo: Repo, extra: Mapping[str, str], *, server_config: bool) -> dict[str, str]:
    chosen = {**_ENV, **extra}
    if server_config:
        for name in _OWN_CONFIG:
            chosen.pop(name, None)
    identity = {name: value for name, value in os.environ.items() if name in AUTHOR}
    if repo.jail is not None:
        # Nothing of the server's environment but the identity it commits with.
        return {"PATH": JAIL_PATH, **identity, **chosen}
    if server_config:
        return {**os.environ, **chosen}
    # The server's git variables (a GIT_DIR, a GIT_CONFIG_COUNT) would name other places and settings.
    kept = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    return {**kept, **identity, **chosen}


def command(repo: Repo, argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str] | None, str]:
    """How to start ``argv`` in ``repo``'s place: the whole argv, its environment, its folder (``/``:
    git finds its work tree through ``--work-tree``, not through the folder it starts in)."""
    if repo.jail is None:
        return list(argv), dict(env), "/"
    # As for the agents: bubblewrap's own command line and environment (which a hook inside can
    # read at /proc/1) name nothing of the server; its options come from a private file.
    return launch(repo.jail, argv, cwd="/", env=env).argv, None, "/"


# A timeout here (not a caller's asyncio.timeout) ends git with what it started (ssh) and says so.
async def run(
    repo: Repo,
    *args: str,
    check: bool = True,
    author: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,  # noqa: ASYNC109
    detached: bool = False,
    server_config: bool = False,
    input: str | None = None,
) -> Done:
    """``git args...`` in ``repo``; ``env`` adds variables, ``timeout`` ends it (raising GitError),
    ``detached`` runs it without a controlling terminal (ssh cannot ask for a password),
    ``server_config`` keeps the server's own git configuration (a push's credential helpers),
    ``input`` is its standard input."""
    full_env = _environment(repo, env or {}, server_config=server_config)
    if author:
        full_env.update(await _fallback_identity(repo, full_env))
    return await run_program(
        repo,
        git_argv(repo, args),
        env=full_env,
        check=check,
        timeout=timeout,
        detached=detached,
        shown=list(args),
        input=input,
    )


async def run_program(
    repo: Repo,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,  # noqa: ASYNC109
    detached: bool = False,
    shown: list[str] | None = None,
    input: str | None = None,
) -> Done:
    """A program (git, or a small shell step) in ``repo``'s place: in its sandbox if it has one."""
    full, full_env, cwd = command(repo, argv, env if env is not None else _environment(repo, {}, server_config=False))
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *full,
            stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env if full_env is not None else {},
            cwd=cwd,
            start_new_session=detached,
        )
    )
    try:
        proc = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # Cancelled while it starts: asyncio's own clean-up would kill only bubblewrap's first
        # process and then wait for pipes the sandbox still holds. It is ended here instead.
        await _end(await starting, detached)
        raise
    said = shown if shown is not None else list(argv)
    if timeout is None and repo.jail is not None:
        timeout = SANDBOX_TIMEOUT
    try:
        data = None if input is None else input.encode()
        out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    except TimeoutError:
        await _end(proc, detached)
        raise GitError(said, -1, "", f"no answer within {timeout:g} seconds") from None
    except BaseException:
        # Cancelled (a task stopped, the server stopping): git must not outlive its caller.
        await asyncio.shield(_end(proc, detached))
        raise
    done = Done(proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
    if check and done.code:
        raise GitError(said, done.code, done.out, done.err)
    return done


def run_now(repo: Repo, *args: str, check: bool = True, author: bool = False) -> Done:
    """:func:`run` for synchronous callers (setting a folder up, reading a remote's URL)."""
    env = _environment(repo, {}, server_config=False)
    if author:
        env.update({name: value for name, value in AUTHOR.items() if name not in env})
    full, full_env, cwd = command(repo, git_argv(repo, args), env)
    try:
        finished = subprocess.run(
            full,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=full_env if full_env is not None else {},
            cwd=cwd,
            check=False,
            timeout=SANDBOX_TIMEOUT if repo.jail is not None else None,
        )
    except subprocess.TimeoutExpired:
        raise GitError(list(args), -1, "", f"no answer within {SANDBOX_TIMEOUT:g} seconds") from None
    done = Done(finished.returncode, finished.stdout, finished.stderr)
    if check and done.code:
        raise GitError(list(args), done.code, done.out, done.err)
    return done


async def _end(proc: asyncio.subprocess.Process, detached: bool) -> None:
    if detached:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # with what it started (ssh)
    else:
        # A sandbox's own init may outlive bubblewrap's first process: it is ended too, and with
        # it everything in the sandbox.
        end_tree(proc.pid, descendants(proc.pid))
    await proc.wait()


async def _fallback_identity(repo: Repo, env: dict[str, str]) -> dict[str, str]:
    """The tasks' identity for what neither the environment nor the repository's configuration sets.

    Git ranks ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` above ``user.name``/``user.email``, so the
    fallback may only be set when the repository has none.
    """
    missing = {name: value for name, value in AUTHOR.items() if name not in env}
    if not missing:
        return {}
    done = await run(repo, "config", "--get-regexp", r"^user\.(name|email)$", check=False)
    configured = {line.split(" ", 1)[0].split(".", 1)[1].upper() for line in done.out.splitlines() if " " in line}
    return {name: value for name, value in missing.items() if name.rsplit("_", 1)[1] not in configured}
