"""What an agent can plant in a ``.git`` it writes: every way git runs a command of the repository's.

Each planted command tries to leave a marker ``pwned-<name>`` in the server's data folder (which
only the server can reach) and writes into ``<.git>/ran/<name>`` that it ran, as which user. The
plants are written by the test itself (:func:`plant`) or by an agent through a real turn
(:func:`plant_script`, a shell script for its Bash tool).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "post-index-change",
    "fsmonitor-watchman",
)
INCLUDED_HOOKS = ("post-checkout", "post-commit", "post-index-change", "reference-transaction")
# Run by no git of the server, in a sandbox or not (its -c options and environment turn them off).
NEVER = frozenset(
    {f"hook-{name}" for name in HOOKS}
    | {
        "fsmonitor",
        "external-diff",
        "textconv",
        "pager",
        "gpg",
        "included-fsmonitor",
        "included-hook",
        "editor",
        "ssh",
        "credential",
    }
)
# Keys no list of -c options foresees: they run where the .git says, which is why a .git an agent
# writes is only ever used in the sandbox.
UNFORESEEN = frozenset({"clean", "smudge", "merge-driver"})


def _tool(data: Path, trace: Path) -> str:
    return (
        "#!/bin/sh\n"
        "name=$1; shift\n"
        f"touch '{data}/pwned-'\"$name\"\n"
        f"id -u > '{trace}/'\"$name\"\n"
        'case "$name" in clean|smudge|pager) cat ;; textconv) cat "$1" ;; esac\n'
        "exit 0\n"
    )


def _config(dot_git: Path) -> dict[str, str]:
    tool = dot_git / "evil"
    return {
        "core.fsmonitor": f"{tool} fsmonitor",
        "diff.external": f"{tool} external-diff",
        "diff.ev.textconv": f"{tool} textconv",
        "core.pager": f"{tool} pager",
        "pager.log": f"{tool} pager",
        "filter.ev.clean": f"{tool} clean",
        "filter.ev.smudge": f"{tool} smudge",
        "merge.ev.driver": f"{tool} merge-driver",
        "gpg.program": str(dot_git / "evil-gpg"),  # run without a shell: one path
        "commit.gpgSign": "true",
        "log.showSignature": "true",
        "merge.verifySignatures": "true",
        "core.editor": f"{tool} editor",
        "sequence.editor": f"{tool} editor",
        "core.sshCommand": f"{tool} ssh",
        "credential.helper": f"!{tool} credential",
        "include.path": str(dot_git / "included.cfg"),
    }


def _included(dot_git: Path) -> str:
    return f"[core]\n\thooksPath = {dot_git / 'hooks2'}\n\tfsmonitor = {dot_git / 'evil'} included-fsmonitor\n"


ATTRIBUTES = "* filter=ev diff=ev merge=ev\n"


def plant(repo: Path, data: Path, *, unforeseen: bool = True) -> Path:
    """Plant in ``repo/.git`` (written by the test) everything, or (without ``unforeseen``) only
    what the server's git turns off; returns where the commands note that they ran."""
    dot_git = repo / ".git"
    trace = dot_git / "ran"
    trace.mkdir()
    tool = dot_git / "evil"
    tool.write_text(_tool(data, trace))
    tool.chmod(0o755)
    (dot_git / "evil-gpg").write_text(f"#!/bin/sh\nexec '{tool}' gpg\n")
    (dot_git / "evil-gpg").chmod(0o755)
    for name in HOOKS:
        (dot_git / "hooks" / name).write_text(f"#!/bin/sh\nexec '{tool}' hook-{name}\n")
        (dot_git / "hooks" / name).chmod(0o755)
    (dot_git / "hooks2").mkdir()
    for name in INCLUDED_HOOKS:
        (dot_git / "hooks2" / name).write_text(f"#!/bin/sh\nexec '{tool}' included-hook\n")
        (dot_git / "hooks2" / name).chmod(0o755)
    (dot_git / "included.cfg").write_text(_included(dot_git))
    config = _config(dot_git)
    if unforeseen:
        (dot_git / "info").mkdir(exist_ok=True)
        (dot_git / "info" / "attributes").write_text(ATTRIBUTES)
    else:
        config = {key: value for key, value in config.items() if not key.startswith(("filter.", "merge.ev."))}
    for key, value in config.items():
        subprocess.run(["git", "config", "--file", str(dot_git / "config"), key, value], check=True)
    return trace


def plant_script(dot_git: Path, data: Path) -> str:
    """The same plants as a shell script an agent runs with its Bash tool (``dot_git`` absolute, as
    the agent sees it: the same path as outside its sandbox)."""
    q = shlex.quote
    trace, tool = dot_git / "ran", dot_git / "evil"
    lines = [
        f"mkdir -p {q(str(trace))} {q(str(dot_git / 'hooks'))} {q(str(dot_git / 'hooks2'))} {q(str(dot_git / 'info'))}",
        f"printf %s {q(_tool(data, trace))} > {q(str(tool))}",
        f"printf %s {q(chr(35) + '!/bin/sh' + chr(10) + f'exec {tool} gpg' + chr(10))} > {q(str(dot_git / 'evil-gpg'))}",
        f"chmod +x {q(str(tool))} {q(str(dot_git / 'evil-gpg'))}",
    ]
    for name in HOOKS:
        hook = dot_git / "hooks" / name
        lines.append(f"printf %s {q(f'#!/bin/sh{chr(10)}exec {tool} hook-{name}{chr(10)}')} > {q(str(hook))}")
        lines.append(f"chmod +x {q(str(hook))}")
    for name in INCLUDED_HOOKS:
        hook = dot_git / "hooks2" / name
        lines.append(f"printf %s {q(f'#!/bin/sh{chr(10)}exec {tool} included-hook{chr(10)}')} > {q(str(hook))}")
        lines.append(f"chmod +x {q(str(hook))}")
    lines.append(f"printf %s {q(_included(dot_git))} > {q(str(dot_git / 'included.cfg'))}")
    lines.append(f"printf %s {q(ATTRIBUTES)} > {q(str(dot_git / 'info' / 'attributes'))}")
    for key, value in _config(dot_git).items():
        lines.append(f"git config --file {q(str(dot_git / 'config'))} {q(key)} {q(value)}")
    lines.append("echo planted")
    return " && ".join(lines)


def ran(trace: Path) -> dict[str, str]:
    """What ran (by name) and as which user, from the plants' own notes."""
    return {path.name: path.read_text().strip() for path in trace.iterdir()} if trace.is_dir() else {}


def pwned(data: Path) -> set[str]:
    """The plants that reached the server's data folder."""
    return {path.name.removeprefix("pwned-") for path in data.glob("pwned-*")}
