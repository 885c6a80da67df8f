"""Driver for the Claude Code CLI: live sessions through the Agent SDK, their events and failures,
the sandbox, transcript paths, and ending process trees. No Django imports (an import-linter
contract checks it).

:class:`LiveSession` is imported on first use: the Agent SDK (with the MCP package under it) takes
about 0.6 s to import, which every management command, git helper and web process paid at start
although only the engine drives sessions.
"""

from typing import TYPE_CHECKING, Any

from .events import (
    Entry,
    Event,
    Exit,
    Garbage,
    Init,
    McpStatus,
    Notice,
    Oversized,
    Result,
    Sent,
    StreamUsage,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
    Unknown,
    as_dict,
    as_int,
)
from .failures import Failure, FailureKind, Outcome, classify
from .paths import encode_project_dir, is_uuid, transcript_path
from .proctree import is_process_of, kill_group, process_start_time
from .sandbox import Bridge, Sandbox, SandboxMissing, find_bwrap, find_socat
from .spec import CliNotFound, LiveSpec, Permission, Prompt, SessionFailed, TurnHandler, WorkdirMissing

if TYPE_CHECKING:
    from .live import LiveSession

__all__ = [
    "Bridge",
    "CliNotFound",
    "Entry",
    "Event",
    "Exit",
    "Failure",
    "FailureKind",
    "Garbage",
    "Init",
    "LiveSession",
    "LiveSpec",
    "McpStatus",
    "Notice",
    "Outcome",
    "Oversized",
    "Permission",
    "Prompt",
    "Result",
    "Sandbox",
    "SandboxMissing",
    "Sent",
    "SessionFailed",
    "StreamUsage",
    "Text",
    "TextDelta",
    "ToolResult",
    "ToolUse",
    "TurnHandler",
    "Unknown",
    "WorkdirMissing",
    "as_dict",
    "as_int",
    "classify",
    "encode_project_dir",
    "find_bwrap",
    "find_socat",
    "is_process_of",
    "is_uuid",
    "kill_group",
    "process_start_time",
    "transcript_path",
]


def __getattr__(name: str) -> Any:
    if name == "LiveSession":
        from .live import LiveSession

        return LiveSession
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
