"""What a task's agent may do, in words, from the settings in force: the one place the New task
form (and anything else that tells it) reads, so the words never drift from what a run does.

A run (``tasks/services/runs.py``) passes CLAUDE_TASK_ALLOWED_TOOLS and CLAUDE_TASK_PERMISSION_MODE
to the CLI, or skip-permissions mode; the agent runs in its sandbox unless CLAUDE_SANDBOX is off,
and its network leads through the egress proxy to the model API and CLAUDE_AGENT_ALLOWED_HOSTS.
What the CLI lets through by itself was seen with the pinned CLI: in ``default`` mode shell commands
that only read (``ls``, ``git status``); in ``acceptEdits`` also those that only make, change or
remove files in the working directory (``touch``, ``mkdir``, ``rm``, ``sed -i``); ``python3 -c``
asks in both.
"""

from __future__ import annotations

from django.conf import settings

SHELL = "Bash"

# What the CLI lets through by itself in each permission mode, beside the allowed tools.
_MODES = {
    "acceptEdits": (
        "Its edits in the worktree are accepted (permission mode acceptEdits), and the CLI lets through by "
        "itself shell commands that only read or only make, change or remove files in the worktree (ls, "
        "mkdir, touch, rm)."
    ),
    "default": "The CLI lets through by itself shell commands that only read (ls, git status; permission mode default).",
}
# Modes in which nothing is asked.
_SILENT = {
    "plan": "Permission mode plan: the agent only reads and plans; it changes nothing.",
    "dontAsk": "Permission mode dontAsk: every other tool call is refused without asking.",
    "bypassPermissions": (
        "Permission mode bypassPermissions: every tool call runs without asking, as in skip-permissions mode."
    ),
}


def _network() -> str:
    hosts = [str(rule) for rule in settings.CLAUDE_AGENT_ALLOWED_HOSTS.rules]
    where = "the model API" + (f" and {', '.join(hosts)}" if hosts else "")
    return f"its network leads only to {where}, through the server's egress proxy"


def _sandboxed() -> bool:
    return settings.CLAUDE_SANDBOX != "off"


def _skip_permissions() -> str:
    """What skip-permissions mode lets a task's agent do, here and now."""
    if not _sandboxed():
        return (
            "CLAUDE_SANDBOX is off: with skip permissions the agent runs any command and changes any file the "
            "server's user can reach, without asking, outside the worktree too, and reaches any host; only "
            "the hook that keeps two tasks off one file still applies. Use it only on a machine you can throw away."
        )
    return (
        "With skip permissions the agent runs any shell command and changes any file without asking, inside "
        "its sandbox: it sees its worktree (and a private /tmp), not the server's files, other members' "
        f"folders or other projects, and {_network()}. The hook that keeps two tasks off one file still applies."
    )


def _normal() -> str:
    """What a task's agent may do when skip-permissions mode is off, here and now."""
    tools = list(settings.CLAUDE_TASK_ALLOWED_TOOLS)
    mode = settings.CLAUDE_TASK_PERMISSION_MODE
    shell = SHELL in tools
    listed = ", ".join(tools) if tools else "no tool"
    words = [
        f"Off (the default), the agent uses {listed} without asking" + (": any shell command too." if shell else ".")
    ]
    if mode in _SILENT:
        words.append(_SILENT[mode])
    else:
        words.append(_MODES.get(mode, f"Permission mode {mode}."))
        example = "a web fetch, say" if shell else "another shell command, a web fetch"
        words.append(
            f"Any other tool call ({example}) asks on the task's page, where you or an admin allow or deny it."
        )
    if _sandboxed():
        words.append(f"It works inside its sandbox, as with skip permissions: {_network()}.")
    return " ".join(words)


def task_may(*, skip_permissions: bool) -> str:
    """What a task's agent may do in the one mode or the other, as the settings in force have it."""
    return _skip_permissions() if skip_permissions else _normal()
