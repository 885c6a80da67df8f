"""What a finished turn said and why it failed (drivers/claude/failures.py).

The texts are the pinned CLI's own words (each is seen for real in tests/devtools/test_stub_api.py).
"""

from __future__ import annotations

import pytest

from drivers.claude import Exit, Failure, FailureKind, Garbage, Outcome, Result, StreamUsage, Text, classify

SID = "0b6f4b52-3c1e-4d7a-9f51-2a1d6c8e9b30"


def result(text: str = "done", *, is_error: bool = False, errors: tuple[str, ...] = ()) -> Result:
    return Result(
        is_error=is_error,
        subtype="success",
        text=text,
        session_id=SID,
        duration_ms=1,
        total_cost_usd=0.0,
        input_tokens=1,
        output_tokens=1,
        errors=errors,
    )


def outcome_of(*events: object) -> Outcome:
    outcome = Outcome()
    for event in events:
        outcome.see(event)  # type: ignore[arg-type]
    return outcome


@pytest.mark.parametrize(
    ("said", "kind"),
    [
        (f"Error: Session ID {SID} is already in use.", FailureKind.SESSION_IN_USE),
        (f"No conversation found with session ID: {SID}", FailureKind.SESSION_MISSING),
        (
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
            FailureKind.ROOT_REFUSED,
        ),
        ("Not logged in · Please run /login", FailureKind.NOT_LOGGED_IN),
        (
            'API Error: 401 {"type":"error","error":{"type":"authentication_error","message":"Invalid API key"}}',
            FailureKind.NOT_LOGGED_IN,
        ),
        ("API Error: Connection error.", FailureKind.API_UNREACHABLE),
        ("connect ECONNREFUSED 127.0.0.1:9", FailureKind.API_UNREACHABLE),
        ("Something nobody expected", FailureKind.OTHER),
        ("", FailureKind.OTHER),
    ],
)
def test_classify_reads_the_clis_words(said: str, kind: FailureKind) -> None:
    assert classify(said) == kind
    assert classify(f"some noise before\n{said}\nand after") == kind


def test_the_first_pattern_found_decides() -> None:
    # A session in use is what to act on, even if the CLI also said it is not logged in.
    assert classify(f"Not logged in\nError: Session ID {SID} is already in use.") == FailureKind.SESSION_IN_USE


def test_a_turn_with_a_successful_result_has_no_failure() -> None:
    outcome = outcome_of(Text(text="hi"), result("hi"))
    assert outcome.failure() is None
    # Even if the process exited oddly after it answered.
    outcome.see(Exit(returncode=1, stderr="noise"))
    assert outcome.failure() is None


def test_an_error_result_is_a_reported_failure_in_the_results_words() -> None:
    outcome = outcome_of(
        result(f"No conversation found with session ID: {SID}", is_error=True), Exit(returncode=1, stderr="")
    )
    assert outcome.failure() == Failure(
        kind=FailureKind.SESSION_MISSING,
        detail=f"No conversation found with session ID: {SID}",
        reported=True,
        returncode=1,
    )


def test_an_error_result_without_text_is_read_from_its_errors() -> None:
    outcome = outcome_of(result("", is_error=True, errors=(f"No conversation found with session ID: {SID}",)))
    failure = outcome.failure()
    assert failure is not None and failure.kind == FailureKind.SESSION_MISSING and failure.reported
    assert SID in failure.detail


def test_an_exit_without_a_result_is_an_unreported_failure_in_stderrs_words() -> None:
    stderr = f"Error: Session ID {SID} is already in use."
    failure = outcome_of(Exit(returncode=1, stderr=stderr)).failure()
    assert failure == Failure(kind=FailureKind.SESSION_IN_USE, detail=stderr, reported=False, returncode=1)


def test_lines_that_were_not_json_count_as_what_the_cli_said() -> None:
    failure = outcome_of(Garbage(line="Not logged in · Please run /login"), Exit(returncode=1, stderr="")).failure()
    assert failure is not None and failure.kind == FailureKind.NOT_LOGGED_IN
    assert failure.detail == "Not logged in · Please run /login"


def test_a_turn_that_said_nothing_still_fails_with_its_exit_code() -> None:
    assert outcome_of(Exit(returncode=-9, stderr="")).failure() == Failure(
        kind=FailureKind.OTHER, detail="", reported=False, returncode=-9
    )
    assert outcome_of().failure() == Failure(kind=FailureKind.OTHER, detail="", reported=False, returncode=None)


def test_the_detail_keeps_the_end_of_a_long_text() -> None:
    stderr = "x" * 5000 + "the actual reason"
    failure = outcome_of(Exit(returncode=2, stderr=stderr)).failure()
    assert failure is not None
    assert len(failure.detail) == 2000 and failure.detail.endswith("the actual reason")


def test_the_tokens_that_streamed_add_up_per_request_for_a_turn_interrupted_before_its_result() -> None:
    outcome = outcome_of(
        StreamUsage(input_tokens=1000, output_tokens=1, started=True),
        StreamUsage(input_tokens=0, output_tokens=20, started=False),  # the first request's output so far
        StreamUsage(input_tokens=1200, output_tokens=1, started=True),
        StreamUsage(input_tokens=0, output_tokens=7, started=False),
    )
    assert outcome.streamed_tokens == (2200, 27)
    assert outcome_of(StreamUsage(input_tokens=0, output_tokens=5, started=False)).streamed_tokens == (0, 0)
