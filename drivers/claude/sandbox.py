"""Confining a CLI process with bubblewrap: it sees its working directory and its own config
folder, the CLI and the system's programs, and nothing else of the machine.

No Django imports. :func:`wrap` turns the argv of a CLI run into the argv of the same run inside
``bwrap``. Inside, the agent is an ordinary user (uid 1000 in a user namespace: files it writes
belong to the server's user outside), has a private ``/tmp``, its own PID namespace (every process
it starts ends when the sandbox ends, ``setsid`` or not) and an environment of only what the
caller lists. The server's data folder, home, database, secrets, other people's transcripts and
other projects are not there at all. The network is shared (the CLI must reach the API), unless
the sandbox is one for the server's own work in an agent's folder (``network=False``: git).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

AGENT_UID = 1000
AGENT_NAME = "agent"
# System folders every program needs, read-only.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What of /etc programs need (name lookups, certificates, the dynamic linker, shells, git); the
# rest of /etc (passwd, shadow, the server's own configuration and env files) stays out.
ETC_ENTRIES = (
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "resolv.conf",
    "ssl",
    "timezone",
)


class SandboxMissing(Exception):
    """bubblewrap is not installed where the settings say."""


@dataclass(frozen=True)
class Sandbox:
    """What one CLI process may see.

    ``writable`` folders (the working directory, the session's config folder) and ``readonly``
    ones (the CLI's own folder, a hook's interpreter) appear at the same paths as outside, so
    paths the CLI writes into its transcript mean the same on both sides. ``protected`` folders
    (a shared project's ``.git``) are bound read-only over the writable ones they lie in. ``state_dir``
    is a private folder of the server where the sandbox's ``/etc/passwd`` is kept. Without
    ``network`` the sandbox has a network namespace of its own with nothing in it but loopback.
    """

    bwrap: str
    writable: Sequence[Path]
    readonly: Sequence[Path]
    state_dir: Path
    home: Path | None = None
    protected: Sequence[Path] = ()
    network: bool = True


def find_bwrap(configured: str = "bwrap") -> str:
    """The bubblewrap executable; raises :class:`SandboxMissing` if there is none."""
    found = shutil.which(configured)
    if found is None:
        raise SandboxMissing(configured)
    return found


def _passwd(state_dir: Path, home: Path) -> tuple[Path, Path]:
    """Files that make the agent a known user (``whoami``, git) without the machine's own lists."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    passwd, group = state_dir / "passwd", state_dir / "group"
    want_passwd = f"{AGENT_NAME}:x:{AGENT_UID}:{AGENT_UID}:{AGENT_NAME}:{home}:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
    want_group = f"{AGENT_NAME}:x:{AGENT_UID}:\nnogroup:x:65534:\n"
    for path, text in ((passwd, want_passwd), (group, want_group)):
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(text)
            tmp.chmod(0o644)
            os.replace(tmp, path)
    return passwd, group


def _system_binds() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            # /bin -> usr/bin on merged-/usr systems: the same link inside.
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for entry in ETC_ENTRIES:
        path = Path("/etc") / entry
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def sandbox_args(
    sandbox: Sandbox, *, cwd: str | os.PathLike[str], env: Mapping[str, str] | None = None, unset: Sequence[str] = ()
) -> list[str]:
    """bwrap and its options, up to the command: the process runs in ``cwd``. With ``env`` its
    environment is exactly that; else it keeps what it is given except the names in ``unset``."""
    home = sandbox.home or Path(cwd)
    passwd, group = _passwd(sandbox.state_dir, home)
    args = [
        sandbox.bwrap,
        "--unshare-user",
        "--uid",
        str(AGENT_UID),
        "--gid",
        str(AGENT_UID),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # Before the binds: the working directory may itself be under /tmp.
        "--tmpfs",
        "/tmp",
        *_system_binds(),
        "--ro-bind",
        str(passwd),
        "/etc/passwd",
        "--ro-bind",
        str(group),
        "/etc/group",
    ]
    for path in sandbox.readonly:
        args += ["--ro-bind", str(path), str(path)]
    for path in sandbox.writable:
        args += ["--bind", str(path), str(path)]
    # After the writable binds, so that they cover what lies inside them.
    for path in sandbox.protected:
        args += ["--ro-bind", str(path), str(path)]
    if not sandbox.network:
        args.append("--unshare-net")
    args += ["--chdir", str(cwd)]
    if env is not None:
        args.append("--clearenv")
        for name, value in {"HOME": str(home), "USER": AGENT_NAME, "LOGNAME": AGENT_NAME, **env}.items():
            args += ["--setenv", name, value]
    else:
        for name in unset:
            args += ["--unsetenv", name]
        args += ["--setenv", "USER", AGENT_NAME, "--setenv", "LOGNAME", AGENT_NAME]
    return args


def wrap(sandbox: Sandbox, argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str]) -> list[str]:
    """The argv that runs ``argv`` in ``cwd`` with exactly ``env`` inside the sandbox (``argv[0]``
    must be inside one of its folders)."""
    return [*sandbox_args(sandbox, cwd=cwd, env=env), "--", *argv]
