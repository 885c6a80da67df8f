"""Driver for the Claude Code CLI: argv, transcript paths, the process of a turn, its events,
its failures, and ending process trees. No Django imports (an import-linter contract checks it).
"""

from .argv import build_argv
from .events import (
    Event,
    Exit,
    Garbage,
    Init,
    Notice,
    Oversized,
    Result,
    Text,
    TextDelta,
    ToolResult,
    ToolUse,
    Unknown,
    parse_event,
    parse_line,
)
from .failures import Failure, FailureKind, Outcome, classify
from .paths import encode_project_dir, is_uuid, transcript_path
from .process import CliNotFound, TurnSpec, WorkdirMissing, run_turn
from .proctree import is_process_of, kill_group, live_groups, process_start_time
from .sandbox import Sandbox, SandboxMissing, find_bwrap

__all__ = [
    "CliNotFound",
    "Event",
    "Exit",
    "Failure",
    "FailureKind",
    "Garbage",
    "Init",
    "Notice",
    "Outcome",
    "Oversized",
    "Result",
    "Sandbox",
    "SandboxMissing",
    "Text",
    "TextDelta",
    "ToolResult",
    "ToolUse",
    "TurnSpec",
    "Unknown",
    "WorkdirMissing",
    "build_argv",
    "classify",
    "encode_project_dir",
    "find_bwrap",
    "is_process_of",
    "is_uuid",
    "kill_group",
    "live_groups",
    "parse_event",
    "parse_line",
    "process_start_time",
    "run_turn",
    "transcript_path",
]
