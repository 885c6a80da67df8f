"""What a person reads when a turn failed, and what to do about it."""

from __future__ import annotations

from django.conf import settings

from drivers import claude
from drivers.egress import EgressProxy

from ..models import Session
from . import agents


def explain(failure: claude.Failure, *, session: Session, egress: EgressProxy | None) -> str:
    """Why a run failed, in people's words. ``egress``: the node's proxy, which may know why the API
    could not be reached."""
    match failure.kind:
        case claude.FailureKind.NOT_LOGGED_IN:
            return (
                "Claude Code is not logged in on the server. Set ANTHROPIC_API_KEY in the server's environment "
                "(or CLAUDE_CODE_OAUTH_TOKEN from `claude setup-token`), restart it, and send the message again."
            )
        case claude.FailureKind.SESSION_MISSING:
            return (
                f"The Claude Code transcript of this chat is missing (looked for {session.transcript_path}). "
                "The CLI deletes old transcripts by itself, or the chat was archived elsewhere. "
                "Its messages stay readable here; start a new chat to continue."
            )
        case claude.FailureKind.ROOT_REFUSED:
            return (
                "The CLI refuses skip-permissions mode (--dangerously-skip-permissions) when it runs as root. "
                "Turn the sandbox on (CLAUDE_SANDBOX, in which the agent is not root), or run the server as an "
                "ordinary user, or run it with skip-permissions off."
            )
        case claude.FailureKind.API_UNREACHABLE:
            return unreachable(failure.detail, egress=egress)
    detail = failure.detail or "no message"
    if failure.reported:
        return f"Claude Code reported an error: {detail}"
    return f"Claude Code ended without an answer (exit code {failure.returncode}): {detail}"


def unreachable(detail: str, *, egress: EgressProxy | None) -> str:
    """A turn that could not reach the Messages API: where it tried, and what to do."""
    what = f"Cannot reach the API at {agents.api_url()}" + (f" ({detail})" if detail else "") + "."
    if agents.sandboxed() and egress is not None and egress.api_failure:
        # The agent's CLI reaches the API through the server's proxy and only sees its connection end.
        what += f" The server itself could not connect to it: {egress.api_failure}."
    if settings.DEMO_MODE:
        return (
            f"{what} The demo's stand-in for the API is not answering: stop the app and start it again with "
            "scripts/run, then send the message again."
        )
    return (
        f"{what} Check that it is up and that the server reaches it (network, proxy, ANTHROPIC_BASE_URL), then "
        "send the message again."
    )
