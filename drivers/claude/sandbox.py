"""Confining a CLI process with bubblewrap: it sees its working directory and its own config
folder, the CLI and the system's programs, and nothing else of the machine.

No Django imports. :func:`wrap` turns the argv of a CLI run into the argv of the same run inside
``bwrap``. Inside, the agent is an ordinary user (uid 1000 in a user namespace: files it writes
belong to the server's user outside), has a private ``/tmp``, its own PID namespace (every process
it starts ends when the sandbox ends, ``setsid`` or not) and an environment of only what the
caller lists. The server's data folder, home, database, secrets, other people's transcripts and
other projects are not there at all.

The network is the sandbox's own (``--unshare-net``): only a loopback of its own. With a
:class:`Bridge` its one way out is the server's egress proxy (:mod:`drivers.egress`): the
proxy's Unix socket is bound in, and socat inside makes it ``127.0.0.1:BRIDGE_PORT``, which the
CLI's ``ANTHROPIC_BASE_URL`` and ``HTTPS_PROXY`` name (the shape of Anthropic's sandbox-runtime on
Linux). Without one (server-side git) there is no way out at all.

:func:`launch` starts bwrap so that its own command line and environment, which every process
inside can read at ``/proc/1``, hold nothing of the server: its options come from a private file
on a descriptor (``--args``) and it starts with an empty environment.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

AGENT_UID = 1000
AGENT_NAME = "agent"
# Where the egress proxy's socket appears inside, and the port socat serves it on there.
BRIDGE_SOCKET = "/run/egress.sock"
BRIDGE_PORT = 3128
BRIDGE_URL = f"http://127.0.0.1:{BRIDGE_PORT}"
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
    """bubblewrap (or socat, for the network bridge) is not installed where the settings say."""


@dataclass(frozen=True)
class Bridge:
    """The sandbox's one way out: the egress proxy's Unix socket (outside), served inside on
    ``127.0.0.1:BRIDGE_PORT`` by ``socat``."""

    socket: Path
    socat: str


@dataclass(frozen=True)
class Sandbox:
    """What one CLI process may see.

    ``writable`` folders (the working directory, the session's config folder) and ``readonly``
    ones (the CLI's own folder, a hook's interpreter) appear at the same paths as outside, so
    paths the CLI writes into its transcript mean the same on both sides. ``protected`` folders
    (a shared project's ``.git``) are bound read-only over the writable ones they lie in. ``state_dir``
    is a private folder of the server where the sandbox's ``/etc/passwd`` and its launch files are
    kept. Without a ``bridge`` the sandbox has no network at all.
    """

    bwrap: str
    writable: Sequence[Path]
    readonly: Sequence[Path]
    state_dir: Path
    home: Path | None = None
    bridge: Bridge | None = None
    protected: Sequence[Path] = ()


def find_bwrap(configured: str = "bwrap") -> str:
    """The bubblewrap executable; raises :class:`SandboxMissing` if there is none."""
    found = shutil.which(configured)
    if found is None:
        raise SandboxMissing(configured)
    return found


def find_socat() -> str:
    """socat, which bridges the egress proxy into a sandbox; raises :class:`SandboxMissing` if there is none."""
    found = shutil.which("socat", path="/usr/bin:/bin")
    if found is None:
        raise SandboxMissing("socat")
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


def sandbox_args(sandbox: Sandbox, *, cwd: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[str]:
    """bwrap and its options, up to the command: the process runs in ``cwd``, in a network namespace
    of its own. With ``env`` its environment is exactly that; else it keeps bwrap's."""
    return [sandbox.bwrap, *_options(sandbox, cwd=cwd, env=env)]


def _options(sandbox: Sandbox, *, cwd: str | os.PathLike[str], env: Mapping[str, str] | None) -> list[str]:
    home = sandbox.home or Path(cwd)
    passwd, group = _passwd(sandbox.state_dir, home)
    args = [
        "--unshare-user",
        "--uid",
        str(AGENT_UID),
        "--gid",
        str(AGENT_UID),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
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
    if sandbox.bridge is not None:
        # Read-only is enough to connect; the agent cannot put anything in its place.
        args += ["--ro-bind", str(sandbox.bridge.socket), BRIDGE_SOCKET]
    for path in sandbox.readonly:
        args += ["--ro-bind", str(path), str(path)]
    for path in sandbox.writable:
        args += ["--bind", str(path), str(path)]
    # After the writable binds, so that they cover what lies inside them.
    for path in sandbox.protected:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--chdir", str(cwd)]
    if env is not None:
        args.append("--clearenv")
        for name, value in {"HOME": str(home), "USER": AGENT_NAME, "LOGNAME": AGENT_NAME, **env}.items():
            args += ["--setenv", name, value]
    return args


# Run inside, before the command: socat serves the proxy's socket on the sandbox's loopback, and
# the command starts once it listens (its first request must not find the port closed). socat
# leaves the command's stdin and stdout alone (they carry the SDK's protocol).
_BRIDGE = """\
socat=$1 port=$2 hexport=$3 sock=$4
shift 4
"$socat" TCP-LISTEN:"$port",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$sock" </dev/null >/dev/null 2>&1 &
# Read with the shell's own read (no process per look); after the first looks, a pause between them.
tries=0
until [ "$tries" -ge 550 ]; do
  while IFS= read -r line; do
    case $line in *": 0100007F:$hexport 00000000:0000 0A "*) break 2 ;; esac
  done </proc/net/tcp
  tries=$((tries + 1))
  [ "$tries" -lt 50 ] || sleep 0.01
done
exec "$@"
"""


def command(sandbox: Sandbox, argv: Sequence[str]) -> list[str]:
    """What runs inside for ``argv``: itself, or behind the bridge's socat if there is one."""
    if sandbox.bridge is None:
        return list(argv)
    port = str(BRIDGE_PORT)
    return ["/bin/sh", "-c", _BRIDGE, "bridge", sandbox.bridge.socat, port, f"{BRIDGE_PORT:04X}", BRIDGE_SOCKET, *argv]


def wrap(sandbox: Sandbox, argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str]) -> list[str]:
    """The argv that runs ``argv`` in ``cwd`` with exactly ``env`` inside the sandbox (``argv[0]``
    must be inside one of its folders). Its options are in bwrap's own argv: see :func:`launch` to
    keep them out of the sandbox's sight."""
    return [*sandbox_args(sandbox, cwd=cwd, env=env), "--", *command(sandbox, argv)]


# Opens the options file on descriptor 3, removes it (it is read once, through the descriptor) and
# starts bwrap with an empty environment.
_LAUNCH = 'exec 3<"$0" || exit 126; rm -f -- "$0"; exec /usr/bin/env -i "$@"'


@dataclass(frozen=True)
class Launch:
    """How to start a sandboxed command: ``argv`` for the caller to run, and the options ``file`` it
    reads (removed as soon as it is opened; :meth:`discard` removes it if it never started)."""

    argv: list[str]
    file: Path

    def discard(self) -> None:
        self.file.unlink(missing_ok=True)


def launch(sandbox: Sandbox, argv: Sequence[str], *, cwd: str | os.PathLike[str], env: Mapping[str, str]) -> Launch:
    """Like :func:`wrap`, with bwrap's options and the environment (``env``) written to a private file
    read on a descriptor: inside, ``/proc/1/cmdline`` reads ``bwrap --args 3 -- <command>`` and
    ``/proc/1/environ`` is empty, whatever the server's own variables and paths are."""
    if "=" in sandbox.bwrap:
        raise SandboxMissing(f"{sandbox.bwrap} (a path with '=' cannot be started through env -i)")
    options = _options(sandbox, cwd=cwd, env=env)
    if any("\0" in option for option in options):
        raise ValueError("a sandbox option holds a NUL character")
    sandbox.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    file = sandbox.state_dir / f"launch-{secrets.token_hex(8)}"
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(b"".join(os.fsencode(option) + b"\0" for option in options))
    return Launch(
        argv=["/bin/sh", "-c", _LAUNCH, str(file), sandbox.bwrap, "--args", "3", "--", *command(sandbox, argv)],
        file=file,
    )
