"""A repository's remotes, and pushing a task's branch to one.

Pushing (:func:`push`) runs no hooks, has no terminal to prompt on, and takes credentials only
from git's own configuration (the server's included: its credential helpers) or from
configuration passed in its environment (``GIT_CONFIG_COUNT``), never in its argv. It runs only
in a repository no agent can write: one with a sandbox is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .running import GitError, Repo, run, run_now


async def remote_url(repo: Repo, remote: str, *, push: bool = False) -> str | None:
    """The (fetch, or with ``push`` the push) URL of ``remote``; None if there is no such remote."""
    done = await run(repo, "remote", "get-url", *(["--push"] if push else []), remote, check=False)
    return done.out.strip() if done.code == 0 else None


def remote_url_now(repo: Repo, remote: str) -> str | None:
    """:func:`remote_url` (the fetch URL) for synchronous callers."""
    done = run_now(repo, "remote", "get-url", remote, check=False)
    return done.out.strip() if done.code == 0 and done.out.strip() else None


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
    repo: Repo,
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
    if repo.jail is not None:
        raise GitError(["push"], 1, "", "pushes run only in a repository no agent can write")
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
        server_config=True,
    )
