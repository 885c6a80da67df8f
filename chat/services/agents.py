"""What a chat's agent runs with: its folders, its environment and its sandbox.

Every CLI process gets an environment made here (the server's own variables stay out, except
the CLI's settings listed in CLAUDE_ENV_PASSTHROUGH) and, unless CLAUDE_SANDBOX is "off", runs
inside bubblewrap seeing only its working directory, its own config folder (which holds its
transcript) and the CLI, in a network of its own whose one way out is its node's egress proxy:
to the model API, with the server's credentials added by the proxy (the agent holds placeholders),
and to the hosts of CLAUDE_AGENT_ALLOWED_HOSTS.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.conf import settings

from drivers import claude, egress, git
from drivers.claude.sandbox import BRIDGE_URL

from ..models import Session

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# What the server's own proxy settings are called; in the sandbox they name the egress proxy.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
# Inside, the model API is on the sandbox's own loopback: never through the proxy variables.
NOT_PROXIED = "localhost,127.0.0.1,::1"


class SandboxUnavailable(Exception):
    """The sandbox is on but bubblewrap is missing; the text says how to install it."""


def config_folder(*, owner_id: int, session_id: str) -> Path:
    """A chat's own CLI config folder, named from ids only: ``CLAUDE_CONFIG_DIR/<user id>/<chat uuid>``."""
    if not claude.is_uuid(session_id):
        raise ValueError(f"not a session UUID: {session_id!r}")
    return Path(settings.CLAUDE_CONFIG_DIR) / str(int(owner_id)) / session_id.lower()


def sandboxed() -> bool:
    return settings.CLAUDE_SANDBOX != "off"


def cli_program() -> str:
    """The CLI's executable with symlinks resolved (a link outside the sandbox would lead nowhere inside)."""
    return os.path.realpath(settings.CLAUDE_CLI) if os.path.exists(settings.CLAUDE_CLI) else settings.CLAUDE_CLI


def _cli_folder(program: str) -> Path:
    """The folder the CLI needs: its npm package (the one with package.json), else its own folder."""
    path = Path(program).parent
    for folder in [path, *path.parents][:3]:
        if (folder / "package.json").is_file():
            return folder
    return path


def _passes(name: str) -> bool:
    patterns = list(settings.CLAUDE_ENV_PASSTHROUGH) + ([] if sandboxed() else ["IS_SANDBOX"])
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def api_url() -> str:
    """Where the agents' CLI sends its Messages API requests (it gets ANTHROPIC_BASE_URL from here)."""
    return os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"


def _bridged(env: dict[str, str]) -> dict[str, str]:
    """``env`` as the sandbox needs it: the API and every proxy variable lead to the egress proxy, and
    each credential the server has is a placeholder that the proxy swaps for the real one."""
    proxies = {name for variable in PROXY_VARIABLES for name in (variable, variable.lower())}
    bridged = {name: value for name, value in env.items() if name not in proxies and name not in egress.CREDENTIALS}
    bridged |= {name: egress.placeholder(name) for name in egress.CREDENTIALS if env.get(name)}
    bridged |= {name: BRIDGE_URL for variable in ("HTTP_PROXY", "HTTPS_PROXY") for name in (variable, variable.lower())}
    return bridged | {"ANTHROPIC_BASE_URL": BRIDGE_URL, "NO_PROXY": NOT_PROXIED, "no_proxy": NOT_PROXIED}


def environment(*, session: Session, extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The CLI's whole environment for a turn of ``session``."""
    env = {name: value for name, value in os.environ.items() if _passes(name)}
    if sandboxed():
        env = _bridged(env)
    env.update(
        {
            "PATH": SANDBOX_PATH if sandboxed() else os.environ.get("PATH", SANDBOX_PATH),
            "HOME": session.config_dir,
            "CLAUDE_CONFIG_DIR": session.config_dir,
            **extra,
        }
    )
    return env


def egress_policy() -> egress.Policy:
    """What the egress proxy does now (asked on every request): where the API is, the server's
    credentials (read from its environment when used, never stored) and the allowed hosts."""
    return egress.Policy(
        api_url=api_url(),
        credentials={name: value for name in egress.CREDENTIALS if (value := os.environ.get(name, ""))},
        allowed=settings.CLAUDE_AGENT_ALLOWED_HOSTS,
    )


def _missing(program: str, package: str) -> SandboxUnavailable:
    return SandboxUnavailable(
        f"The server cannot confine Claude Code: {program} is not installed. An admin installs it with "
        f"`apt-get install {package}` (the README's set-up command does this) and restarts the server; "
        "or sets CLAUDE_SANDBOX=off, which lets every agent see and reach everything the server can."
    )


def _bridge(proxy: egress.EgressProxy | None) -> claude.Bridge:
    """The sandbox's way out: the egress proxy of the node it runs on."""
    if proxy is None:
        raise SandboxUnavailable("The server's egress proxy for agents is not running: restart the server.")
    try:
        socat = claude.find_socat()
    except claude.SandboxMissing:
        raise _missing("socat", "socat") from None
    return claude.Bridge(socket=proxy.socket_path, socat=socat)


def _bwrap() -> str:
    try:
        return claude.find_bwrap(settings.CLAUDE_BWRAP)
    except claude.SandboxMissing:
        raise _missing("bubblewrap", "bubblewrap") from None


def _state_dir() -> Path:
    return Path(settings.DATA_DIR) / "sandbox"


def sandbox(
    *,
    session: Session,
    egress: egress.EgressProxy | None,
    readonly: Sequence[Path] = (),
    writable: Sequence[Path] = (),
) -> claude.Sandbox | None:
    """The sandbox of a turn of ``session`` (None when CLAUDE_SANDBOX is off); ``egress``: the proxy
    of the node it runs on, its one way out."""
    if not sandboxed():
        return None
    bwrap = _bwrap()
    Path(session.config_dir).mkdir(parents=True, exist_ok=True)
    return claude.Sandbox(
        bwrap=bwrap,
        writable=[Path(session.workdir), Path(session.config_dir), *writable],
        readonly=[_cli_folder(cli_program()), *readonly],
        state_dir=_state_dir(),
        home=Path(session.config_dir),
        bridge=_bridge(egress),
        protected=_protected(session),
    )


def git_sandbox(folder: Path) -> claude.Sandbox | None:
    """How the server runs git in a folder its agents write (a member's own folder, where ``.git``
    is theirs): as they do, in a sandbox with the folder writable, as the agents' user, but with
    no network and nothing of the server's environment. None when CLAUDE_SANDBOX is off (every
    agent then runs as the server itself)."""
    if not sandboxed():
        return None
    return claude.Sandbox(bwrap=_bwrap(), writable=[folder], readonly=[], state_dir=_state_dir(), home=folder)


def _protected(session: Session) -> list[Path]:
    """What a chat working in a shared project's folder may read but not write: the project's own
    git directory (the server runs git there with its own powers) and its tasks' worktrees."""
    root = settings.CLAUDE_PROJECTS.get(session.project) if session.project else None
    if root is None or Path(root) != Path(session.workdir):
        return []
    return protect_shared(Path(root))


PROTECTED = (".git", ".worktrees")


def protect_shared(root: Path) -> list[Path]:
    """A shared project's ``.git`` and ``.worktrees``, made (empty) if missing so that an agent cannot
    make them: a ``.git`` an agent made would be the server's to run git in."""
    found = []
    for name in PROTECTED:
        path = root / name
        if name == ".worktrees":
            try:
                git.make_ignored_folder(path)
            except git.GitError:
                raise SandboxUnavailable(_linked(root, name)) from None
        elif not os.path.lexists(path):
            path.mkdir()
        if os.path.islink(path):
            raise SandboxUnavailable(_linked(root, name))
        found.append(path)
    return found


def _linked(root: Path, name: str) -> str:
    return (
        f"The shared project {root} has a {name} that is a symbolic link (or lies behind one), which an agent "
        f"may have made. An admin checks it and replaces it with the real folder ({name} of the repository "
        "itself), then chats and tasks there work again."
    )
