"""Confining the CLI with bubblewrap (drivers/claude/sandbox.py), on the machine's real ``bwrap``:
what a process inside sees (of the files, of the network, of bwrap itself), and a live session
started inside."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from drivers.claude import Bridge, LiveSession, LiveSpec, Result, Sandbox, SandboxMissing, Sent, find_bwrap, find_socat
from drivers.claude.sandbox import AGENT_NAME, AGENT_UID, BRIDGE_URL, launch, wrap
from drivers.egress import EgressProxy, Policy, placeholder
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


# What a process inside reads of bwrap (pid 1 in the sandbox) and of itself.
PROC = """\
python3 - <<'EOF'
import json, os
def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace").split("\\0")[:-1]
print(json.dumps({
    "cmdline": read("/proc/1/cmdline"), "environ": read("/proc/1/environ"), "own": read("/proc/self/environ"),
    "fds": sorted(os.listdir("/proc/1/fd")),
}))
EOF
"""


def test_bwrap_started_by_launch_shows_nothing_of_the_server(sandbox: Sandbox) -> None:
    """bwrap's own command line and environment are readable inside (it is pid 1 there): they hold
    neither the server's variables nor its paths, only ``bwrap --args 3 -- <command>``."""
    work = sandbox.writable[0]
    started = launch(sandbox, ["/bin/bash", "-c", PROC], cwd=work, env={"PATH": "/usr/bin:/bin", "WANTED": "yes"})
    server_env = {**os.environ, "DATABASE_URL": "postgres://u:SERVER-PW@db/x", "ANTHROPIC_API_KEY": "sk-REAL"}
    seen = look(started.argv, env=server_env)
    assert seen["cmdline"] == [sandbox.bwrap, "--args", "3", "--", "/bin/bash", "-c", PROC]
    assert seen["environ"] == []  # bwrap started with an empty environment
    # The given environment, and what bash adds to it itself.
    own = {k: v for k, v in (item.split("=", 1) for item in seen["own"]) if k not in ("PWD", "SHLVL", "_")}  # type: ignore[union-attr]
    assert own == {
        "PATH": "/usr/bin:/bin",
        "WANTED": "yes",
        "HOME": str(work),
        "USER": AGENT_NAME,
        "LOGNAME": AGENT_NAME,
    }
    assert "3" not in seen["fds"]  # the options' descriptor is closed
    assert not started.file.exists()  # the options file went as soon as it was opened
    assert not list(sandbox.state_dir.glob("launch-*"))


def test_without_a_bridge_the_sandbox_has_no_network(sandbox: Sandbox, stub_api, outside_host) -> None:
    """No bridge (what server-side git gets): neither the server's loopback nor any other host."""
    port = stub_api.url.rsplit(":", 1)[1]
    tries = f"""python3 - <<'EOF'
import json, socket
seen = {{}}
for host, port in (("127.0.0.1", {port}), ("{outside_host.host}", {outside_host.port}), ("::1", {port})):
    try:
        socket.create_connection((host, port), timeout=5).close()
        seen[host] = "connected"
    except OSError as exc:
        seen[host] = exc.strerror or str(exc)
print(json.dumps(seen))
EOF
"""
    seen = look(wrap(sandbox, ["/bin/bash", "-c", tries], cwd=sandbox.writable[0], env={"PATH": "/usr/bin:/bin"}))
    assert seen == {
        "127.0.0.1": "Connection refused",  # the sandbox's own loopback, where nothing listens
        outside_host.host: "Network is unreachable",
        "::1": "Connection refused",
    }


async def test_with_a_bridge_the_one_way_out_is_the_egress_proxy(sandbox: Sandbox, stub_api, tmp_path: Path) -> None:
    proxy = EgressProxy(
        folder=tmp_path / "egress",
        policy=lambda: Policy(api_url=stub_api.url, credentials={"ANTHROPIC_API_KEY": "sk-REAL"}),
    )
    await proxy.start()
    try:
        bridged = dataclasses.replace(sandbox, bridge=Bridge(socket=proxy.socket_path, socat=find_socat()))
        port = stub_api.url.rsplit(":", 1)[1]
        body = json.dumps({"messages": [{"role": "user", "content": "echo: through the bridge"}]})
        tries = (
            f"curl -sS -m 10 -H 'x-api-key: {placeholder('ANTHROPIC_API_KEY')}' -H 'content-type: application/json' "
            f"-d '{body}' {BRIDGE_URL}/v1/messages; echo; curl -sS -m 10 http://127.0.0.1:{port}/ 2>&1; echo exit=$?"
        )
        argv = launch(bridged, ["/bin/bash", "-c", tries], cwd=sandbox.writable[0], env={"PATH": "/usr/bin:/bin"}).argv
        start = len(stub_api.requests)
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)
    finally:
        await proxy.close()
    answer, refused = done.stdout.split("\n", 1)
    assert json.loads(answer)["content"] == [{"type": "text", "text": "through the bridge"}]
    assert stub_api.requests[start]["headers"]["x-api-key"] == "sk-REAL"
    assert "Failed to connect to 127.0.0.1" in refused and "exit=7" in refused  # the stand-in's own port: not there


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
        async for event in session.turn("hello", Handler()):
            if not isinstance(event, Sent):  # (the CLI's own first event: it has spawned by then)
                break
    # Both children are started before the first event, but under load /proc may show the second late.
    async with asyncio.timeout(10):
        while len(sleeping(marker)) < 2:
            await asyncio.sleep(0.05)
    async with asyncio.timeout(15):
        await session.close()
    assert_all_gone([session.pid, *sleeping(marker)])
