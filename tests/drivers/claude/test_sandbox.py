"""Confining the CLI with bubblewrap (drivers/claude/sandbox.py), on the machine's real ``bwrap``:
what a process inside sees, and a live session started inside."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from drivers.claude import LiveSession, LiveSpec, Result, Sandbox, SandboxMissing, find_bwrap
from drivers.claude.sandbox import AGENT_NAME, AGENT_UID, sandbox_args, wrap
from tests.drivers.claude.fakes import ANSWER, SID, Handler, fake_cli, records, turn
from tests.processes import assert_all_gone

# What a shell inside reports of its world, as one JSON object.
LOOK = """\
python3 - <<'EOF'
import json, os, subprocess
print(json.dumps({
    "cwd": os.getcwd(), "uid": os.getuid(), "user": subprocess.run(["whoami"], capture_output=True, text=True).stdout.strip(),
    "env": dict(os.environ), "sees_secret": os.path.exists(os.environ.get("SECRET_PATH", "/nonexistent")),
    "tmp": sorted(os.listdir("/tmp")), "pid": os.getpid(),
}))
EOF
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    work = tmp_path / "work"
    work.mkdir()
    return Sandbox(bwrap=find_bwrap(), writable=[work], readonly=[], state_dir=tmp_path / "state", home=work)


def look(argv: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_find_bwrap(tmp_path: Path) -> None:
    found = find_bwrap()
    assert os.path.isabs(found) and os.access(found, os.X_OK)
    with pytest.raises(SandboxMissing):
        find_bwrap(str(tmp_path / "no-bwrap"))


def test_inside_the_agent_is_an_ordinary_user_who_sees_only_its_folders(sandbox: Sandbox, tmp_path: Path) -> None:
    work = sandbox.writable[0]
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's")
    outer_tmp = Path("/tmp") / f"outside-{uuid.uuid4().hex}"
    outer_tmp.touch()
    try:
        seen = look(
            wrap(
                sandbox, ["/bin/bash", "-c", LOOK], cwd=work, env={"PATH": "/usr/bin:/bin", "SECRET_PATH": str(secret)}
            )
        )
    finally:
        outer_tmp.unlink()
    assert seen["cwd"] == str(work)
    assert (seen["uid"], seen["user"]) == (AGENT_UID, AGENT_NAME)
    assert seen["sees_secret"] is False  # not bound: not there at all
    assert outer_tmp.name not in seen["tmp"]  # a /tmp of its own (with only its bound folders in it)
    assert seen["pid"] != os.getpid() and isinstance(seen["pid"], int) and seen["pid"] < 10  # its own pid namespace
    env = seen["env"]
    assert isinstance(env, dict)
    assert env["HOME"] == str(work) and env["USER"] == AGENT_NAME and env["SECRET_PATH"] == str(secret)
    assert "ANTHROPIC_API_KEY" not in env and "DJANGO_SECRET_KEY" not in env


def test_what_the_agent_writes_in_its_folder_is_there_outside(sandbox: Sandbox) -> None:
    work = sandbox.writable[0]
    done = subprocess.run(
        wrap(sandbox, ["/bin/sh", "-c", "echo made inside > made.txt"], cwd=work, env={"PATH": "/usr/bin:/bin"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert (work / "made.txt").read_text() == "made inside\n"


def test_without_an_environment_the_process_keeps_its_own_but_the_unset_names(sandbox: Sandbox) -> None:
    work = sandbox.writable[0]
    argv = [*sandbox_args(sandbox, cwd=work, unset=["SERVER_SECRET"]), "--", "/bin/bash", "-c", LOOK]
    seen = look(argv, env={"PATH": "/usr/bin:/bin", "SERVER_SECRET": "s3cret", "KEPT": "yes"})
    env = seen["env"]
    assert isinstance(env, dict)
    assert env["KEPT"] == "yes" and "SERVER_SECRET" not in env and env["USER"] == AGENT_NAME


def test_what_the_agent_starts_ends_with_the_sandbox(sandbox: Sandbox) -> None:
    marker = str(900_000 + os.getpid() % 1000)  # a sleep only this test starts
    work = sandbox.writable[0]
    done = subprocess.run(
        wrap(
            sandbox,
            ["/bin/bash", "-c", f"setsid sleep {marker} & disown; echo started"],
            cwd=work,
            env={"PATH": "/usr/bin:/bin"},
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.strip() == "started"
    assert not sleeping(marker)


def sleeping(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and Path(f"/proc/{name}/cmdline").read_bytes() == f"sleep\0{marker}\0".encode():
                found.append(int(name))
        except OSError:
            pass
    return found


# ---------------------------------------------------------------------------------------
# A live session in the sandbox (the fake CLI runs on Debian's python3, which is under /usr)


async def test_a_live_session_runs_inside_the_sandbox(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SECRET", "s3cret")
    work = sandbox.writable[0]
    (tmp_path / "secret.txt").write_text("the server's")
    cli = fake_cli(
        work,
        ANSWER,
        setup=f'record("sees secret", os.path.exists({str(tmp_path / "secret.txt")!r}))',
        python="/usr/bin/python3",
    )
    session = LiveSession(
        LiveSpec(
            cli=cli,
            cwd=str(work),
            session_id=SID,
            resume=False,
            sandbox=sandbox,
            env={"PATH": "/usr/bin:/bin", "WANTED": "yes"},
            close_grace=0.5,
        )
    )
    try:
        async with asyncio.timeout(15):
            await session.start()
        events = await turn(session, "hello")
        assert isinstance(events[-1], Result) and events[-1].text == "answered"
        [env] = records(work, "env")
        assert env["WANTED"] == "yes" and "SERVER_SECRET" not in env
        assert env["USER"] == AGENT_NAME and env["CLAUDE_CODE_ENTRYPOINT"] == "sdk-py"
        assert records(work, "sees secret") == [False]
    finally:
        await session.close()
    assert_all_gone([session.pid])


async def test_closing_a_sandboxed_session_ends_everything_the_agent_started(sandbox: Sandbox) -> None:
    work = sandbox.writable[0]
    marker = str(800_000 + os.getpid() % 1000)
    stall = (
        f'spawn("child-a", seconds={marker}); spawn("child-b", setsid=True, seconds={marker}); init(); time.sleep(1000)'
    )
    cli = fake_cli(work, stall, python="/usr/bin/python3")
    session = LiveSession(
        LiveSpec(
            cli=cli,
            cwd=str(work),
            session_id=SID,
            resume=False,
            sandbox=sandbox,
            env={"PATH": "/usr/bin:/bin"},
            close_grace=0.5,
        )
    )
    async with asyncio.timeout(15):
        await session.start()
        async for _event in session.turn("hello", Handler()):
            break
    assert len(sleeping(marker)) == 2
    async with asyncio.timeout(15):
        await session.close()
    assert_all_gone([session.pid, *sleeping(marker)])
