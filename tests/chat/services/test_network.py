"""An agent's network is its own: the model API (through the server's proxy, which holds the key)
and the hosts an admin allows, nothing else.

The real CLI runs in its real sandbox with every tool allowed (bypassPermissions) and runs shell
commands the way an agent would (the stand-in's ``run: <command>``); what the commands printed
reaches the model, and is checked in what the stand-in received. Around it: the stand-in and a
Redis on the server's loopback, an HTTP server on a network of its own (an allowed host on the
company's network), and a sandboxed process built as the agent's is, for breadth.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from chat.models import Session
from chat.services import agents
from drivers.claude.sandbox import BRIDGE_URL, launch
from drivers.egress import parse_allowed_hosts, placeholder
from tests.factories import make_session, make_user
from tests.real_turns import say

pytestmark = [pytest.mark.usefixtures("rt"), pytest.mark.django_db(transaction=True), pytest.mark.real_cli]

REAL_KEY = "sk-ant-REAL-KEY-5e1f09"


@pytest.fixture
def agent(claude_env, settings, monkeypatch):
    """Every tool allowed; the server's key is REAL_KEY and it has a variable of its own."""
    settings.CLAUDE_PERMISSION_MODE = "bypassPermissions"
    monkeypatch.setenv("ANTHROPIC_API_KEY", REAL_KEY)
    monkeypatch.setenv("SERVER_ONLY_SETTING", "server-only-value")
    return claude_env


@pytest.fixture
def listener():
    """A TCP listener of the server's on every interface: reached on loopback and on the machine's own address."""
    with socket.socket(socket.AF_INET6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.bind(("::", 0))
        sock.listen()
        yield sock.getsockname()[1]


def own_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # picks the route only; nothing is sent
        return str(probe.getsockname()[0])


def sent_since(stub_api, start: int) -> str:
    """Everything the model was sent since ``start`` (request bodies, as text)."""
    return "\n".join(json.dumps(request["body"]) for request in stub_api.requests[start:])


async def run(rt, user, chat: Session, command: str, stub_api) -> str:
    """A turn in which the agent runs ``command``; what the model was sent in it."""
    start = len(stub_api.requests)
    await say(engine=rt, session=chat, user=user, text=f"run: {command}")
    return sent_since(stub_api, start)


def probes(targets: dict[str, str]) -> str:
    """A shell command that tries each ``name: host:port`` with bash's /dev/tcp, no proxy, and prints
    ``name=connected`` or ``name=refused``."""
    return "; ".join(
        f"(exec 3<>/dev/tcp/{target.rsplit(':', 1)[0].strip('[]')}/{target.rsplit(':', 1)[1]}) 2>/dev/null "
        f"&& echo {name}=connected || echo {name}=refused"
        for name, target in targets.items()
    )


async def test_no_listener_of_the_server_nor_any_other_host_is_reached_directly(
    agent, stub_api, redis_url, listener, outside_host, rt
):
    targets = {
        "api-stand-in": stub_api.url.removeprefix("http://"),
        "redis": redis_url.removeprefix("redis://").split("/")[0],
        "listener": f"127.0.0.1:{listener}",
        "listener-v6": f"[::1]:{listener}",
        "own-address": f"{own_address()}:{listener}",
        "metadata": "169.254.169.254:80",
        "outside": f"{outside_host.host}:{outside_host.port}",
    }
    # From the server itself, each of them answers (the metadata service aside: no cloud here).
    reached = (
        await asyncio.to_thread(subprocess.run, ["bash", "-c", probes(targets)], capture_output=True, text=True)
    ).stdout
    assert {line for line in reached.split() if line.endswith("=connected")} >= {
        f"{name}=connected" for name in targets if name != "metadata"
    }

    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    sent = await run(rt, ada, chat, probes(targets) + "; redis-cli -u " + redis_url + " ping", stub_api)
    for name in targets:
        assert f"{name}=refused" in sent, name
    assert "PONG" not in sent and "Could not connect to Redis" in sent


async def test_a_host_not_allowed_is_refused_with_what_to_change(agent, stub_api, settings, rt):
    settings.CLAUDE_AGENT_ALLOWED_HOSTS = parse_allowed_hosts("files.example.org")
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    sent = await run(
        rt,
        ada,
        chat,
        "curl -sS https://pypi.org/simple/; curl -sS http://pypi.org/simple/; "
        "python3 -c \"import urllib.request; urllib.request.urlopen('https://pypi.org/simple/')\" 2>&1 | tail -1",
        stub_api,
    )
    # curl over https (CONNECT) gets the status, Python's urllib the reason, plain http the whole text.
    assert "CONNECT tunnel failed, response 403" in sent
    assert (
        "Tunnel connection failed: 403 Forbidden by the sandbox: pypi.org:443 is not in CLAUDE_AGENT_ALLOWED_HOSTS"
        in sent
    )
    assert (
        "The sandbox refused the connection to pypi.org:80: agents reach only the model API and the hosts an admin "
        "allows. An admin can allow it by adding pypi.org to CLAUDE_AGENT_ALLOWED_HOSTS"
    ) in sent


async def test_an_allowed_host_is_reached_through_the_proxy(agent, stub_api, settings, outside_host, rt):
    settings.CLAUDE_AGENT_ALLOWED_HOSTS = parse_allowed_hosts(f"{outside_host.host}:{outside_host.port}")
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    url = f"{outside_host.url}/marker.txt"
    # Plain (HTTP_PROXY), then through a tunnel (CONNECT, as https goes).
    sent = await run(rt, ada, chat, f"curl -sS {url} | sed s/^/plain:/; curl -sS -p {url} | sed s/^/tunnel:/", stub_api)
    assert f"plain:{outside_host.marker}" in sent and f"tunnel:{outside_host.marker}" in sent


async def test_no_variable_or_file_in_the_sandbox_holds_the_key(agent, stub_api, settings, rt):
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    start = len(stub_api.requests)
    sent = await run(
        rt,
        ada,
        chat,
        # Each part after a marker the command's own text does not hold ("=""=" prints "==").
        "env; echo '=''=CMDLINE=''='; tr '\\0' ' ' </proc/1/cmdline; echo; "
        "cat /proc/1/environ >/dev/null && echo environ-bytes=$(cat /proc/1/environ | wc -c); "
        "echo '=''=SELF=''='; cat /proc/self/environ | tr '\\0' ' '; echo '=''=END=''='; "
        # The key in two quoted halves: the command itself must not hold it.
        f'grep -rls "{REAL_KEY[:10]}""{REAL_KEY[10:]}" "$HOME" "$PWD" /tmp /etc /run /dev 2>/dev/null; echo searched',
        stub_api,
    )
    assert "searched" in sent
    assert REAL_KEY not in sent  # in no variable, no command line, no file the agent can read
    # The CLI holds a placeholder and talks to the proxy, which put the real key on every request.
    assert f"ANTHROPIC_API_KEY={placeholder('ANTHROPIC_API_KEY')}" in sent
    assert f"ANTHROPIC_BASE_URL={BRIDGE_URL}" in sent and f"HTTPS_PROXY={BRIDGE_URL}" in sent
    assert [request["headers"].get("x-api-key") for request in stub_api.requests[start:]] == [REAL_KEY] * 2
    # bwrap (pid 1) names nothing of the server: no variable, no folder of its own.
    cmdline = sent.split("==CMDLINE==")[1].split("==SELF==")[0]
    assert "--args 3 --" in cmdline and "--setenv" not in cmdline and "--unsetenv" not in cmdline
    for server_thing in ("SERVER_ONLY_SETTING", str(settings.DATA_DIR), "DJANGO", "DATABASE_URL"):
        assert server_thing not in cmdline, server_thing
    assert "environ-bytes=0" in sent  # bwrap's environment, readable and empty
    own = sent.split("==SELF==")[1].split("==END==")[0]
    assert f"ANTHROPIC_API_KEY={placeholder('ANTHROPIC_API_KEY')}" in own and "PATH=" in own
    assert "SERVER_ONLY_SETTING" not in sent
    # Nor does the chat's config folder (its transcript holds what the commands printed).
    for path in Path(chat.config_dir).rglob("*"):
        if path.is_file():
            assert REAL_KEY not in path.read_text(errors="replace"), path


async def test_with_the_sandbox_off_the_cli_talks_to_the_api_itself(agent, stub_api, settings, monkeypatch, rt):
    """CLAUDE_SANDBOX=off changes nothing of how the CLI reaches the API: directly, with the real key."""
    settings.CLAUDE_SANDBOX = "off"
    monkeypatch.setenv("IS_SANDBOX", "1")  # the test machine runs as root
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    env = agents.environment(session=chat)
    assert env["ANTHROPIC_BASE_URL"] == stub_api.url and env["ANTHROPIC_API_KEY"] == REAL_KEY
    assert "HTTPS_PROXY" not in env
    start = len(stub_api.requests)
    await say(engine=rt, session=chat, user=ada, text="hello")
    assert stub_api.requests[start]["headers"]["x-api-key"] == REAL_KEY


async def test_a_process_in_the_agents_sandbox_reaches_only_what_is_allowed(
    agent, stub_api, settings, redis_url, listener, outside_host, rt
):
    """Breadth: a process started in the sandbox the agent gets (same binds, environment and bridge)
    asks the proxy for each destination, by CONNECT as https would."""
    settings.CLAUDE_AGENT_ALLOWED_HOSTS = parse_allowed_hosts(
        f"{outside_host.host}:{outside_host.port},localhost:{listener}"
    )
    ada = await sync_to_async(make_user)()
    chat = await sync_to_async(make_session)(owner=ada)
    redis = redis_url.removeprefix("redis://").split("/")[0]
    targets = [
        f"{outside_host.host}:{outside_host.port}",
        stub_api.url.removeprefix("http://"),
        redis,
        f"localhost:{listener}",
        f"[::1]:{listener}",
        f"{own_address()}:{listener}",
        "169.254.169.254:80",
        "[fd00:ec2::254]:80",
        "metadata.google.internal:80",
        "0.0.0.0:80",
        f"{outside_host.host}:22",
    ]
    script = f"""
import json, socket
seen = {{}}
for target in {targets!r}:
    sock = socket.create_connection(("127.0.0.1", {BRIDGE_URL.rsplit(":", 1)[1]}))
    sock.sendall(f"CONNECT {{target}} HTTP/1.1\\r\\nhost: {{target}}\\r\\n\\r\\n".encode())
    seen[target] = sock.recv(4096).decode().split("\\r\\n")[0]
    sock.close()
print(json.dumps(seen))
"""
    sandbox = agents.sandbox(session=chat, egress=rt.node.egress)
    assert sandbox is not None
    started = launch(
        sandbox, ["/usr/bin/python3", "-c", script], cwd=chat.workdir, env=agents.environment(session=chat)
    )
    done = await asyncio.to_thread(subprocess.run, started.argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen.pop(targets[0]) == "HTTP/1.1 200 Connection established"
    forbidden = "HTTP/1.1 403 Forbidden by the sandbox: "
    assert seen == {
        targets[1]: f"{forbidden}{targets[1]} is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        redis: f"{forbidden}{redis} is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        targets[3]: f"{forbidden}localhost resolves to 127.0.0.1, a loopback address (the server itself)",
        targets[4]: f"{forbidden}{targets[4]} is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        targets[5]: f"{forbidden}{targets[5]} is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        "169.254.169.254:80": f"{forbidden}169.254.169.254:80 is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        "[fd00:ec2::254]:80": f"{forbidden}[fd00:ec2::254]:80 is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        "metadata.google.internal:80": f"{forbidden}metadata.google.internal:80 is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        "0.0.0.0:80": f"{forbidden}0.0.0.0:80 is not in CLAUDE_AGENT_ALLOWED_HOSTS",
        targets[10]: f"{forbidden}{targets[10]} is not in CLAUDE_AGENT_ALLOWED_HOSTS",
    }
    assert not os.path.exists(started.file)
