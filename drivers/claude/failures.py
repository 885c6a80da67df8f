"""What a finished CLI run said, and why it failed, as a typed value.

The CLI reports most failures as text (in its result, on stdout or on stderr); this is the one
place that reads that text. Services map a :class:`Failure` to words for people. No Django.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .events import Event, Exit, Garbage, Notice, Result, StreamUsage, Text, TextDelta, ToolUse

DETAIL_KEEP_CHARS = 2000


class FailureKind(enum.StrEnum):
    NOT_LOGGED_IN = "not_logged_in"  # no API key, or one the API refused
    SESSION_MISSING = "session_missing"  # --resume found no transcript
    SESSION_IN_USE = "session_in_use"  # --session-id found a transcript: resume it instead
    ROOT_REFUSED = "root_refused"  # skip-permissions mode refused because the CLI runs as root
    API_UNREACHABLE = "api_unreachable"  # no connection to the Messages API (after the CLI's retries)
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str  # the CLI's own words, cut to the last DETAIL_KEEP_CHARS characters
    reported: bool  # True: the CLI ended with an error result; False: it exited without one
    returncode: int | None = None


@dataclass
class Outcome:
    """Collects what matters of a run's events for its verdict: the result and the exit."""

    result: Result | None = None
    returncode: int | None = None
    stderr: str = ""
    garbage: list[str] = field(default_factory=list)
    # The last ``api_retry`` notice, until the API answers: the CLI is retrying a failed request.
    retrying: dict[str, Any] | None = None
    # Input and output tokens of each API request so far, as they streamed.
    streamed: list[tuple[int, int]] = field(default_factory=list)

    def see(self, event: Event) -> None:
        match event:
            case Notice(subtype="api_retry", data=data):
                self.retrying = data
            case Text() | TextDelta() | ToolUse():
                self.retrying = None
            case StreamUsage(input_tokens=input_tokens, output_tokens=output_tokens, started=True):
                self.streamed.append((input_tokens, output_tokens))
            case StreamUsage(input_tokens=input_tokens, output_tokens=output_tokens) if self.streamed:
                # A request's output so far (a running count); its input, if it says it again.
                before_in, before_out = self.streamed[-1]
                self.streamed[-1] = (input_tokens or before_in, max(output_tokens, before_out))
            case Result():
                self.result = event
            case Garbage(line=line):
                self.garbage.append(line)
            case Exit(returncode=code, stderr=stderr):
                self.returncode, self.stderr = code, stderr

    @property
    def streamed_tokens(self) -> tuple[int, int]:
        """Input and output tokens of the requests that streamed (an interrupted turn's usage)."""
        return sum(i for i, _ in self.streamed), sum(o for _, o in self.streamed)

    @property
    def no_connection(self) -> bool:
        """The CLI is retrying a request that got no HTTP answer at all (refused, unreachable, no DNS)."""
        return self.retrying is not None and self.retrying.get("error_status") is None

    @property
    def said(self) -> str:
        result = [self.result.text, *self.result.errors] if self.result else []
        return "\n".join([*self.garbage, self.stderr, *result])

    def failure(self) -> Failure | None:
        """None if the run succeeded, else why it failed."""
        if self.result is not None and not self.result.is_error:
            return None
        said = self.said
        detail = ((self.result.text if self.result and self.result.text else "") or said).strip()
        return Failure(
            kind=classify(said),
            detail=detail[-DETAIL_KEEP_CHARS:],
            reported=self.result is not None,
            returncode=self.returncode,
        )


# Ordered: the first pattern found decides. Each is text the pinned CLI prints.
_PATTERNS: tuple[tuple[FailureKind, tuple[str, ...]], ...] = (
    (FailureKind.SESSION_IN_USE, ("is already in use",)),
    (FailureKind.SESSION_MISSING, ("No conversation found",)),
    (FailureKind.ROOT_REFUSED, ("root/sudo", "cannot be used with root")),
    (FailureKind.NOT_LOGGED_IN, ("Not logged in", "Invalid API key", "/login")),
    # "Connection dropped": the sandbox's proxy could not reach the API and ended the connection.
    (
        FailureKind.API_UNREACHABLE,
        ("Connection error", "ECONNREFUSED", "Unable to connect", "fetch failed", "Connection dropped"),
    ),
)


def classify(said: str) -> FailureKind:
    for kind, needles in _PATTERNS:
        if any(needle in said for needle in needles):
            return kind
    return FailureKind.OTHER
