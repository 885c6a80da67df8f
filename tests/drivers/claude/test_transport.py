"""The CLI's argv and environment as our transport (drivers/claude/transport.py) starts it, against
what the Agent SDK's own subprocess transport would start for the same options: with a transport
of ours the SDK applies none of them, so ours must build the same flags."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from drivers.claude import LiveSpec
from drivers.claude.transport import cli_argv
from tests.drivers.claude.fakes import SID, Start, records

SPECS = {
    "asking": {"permission_mode": "acceptEdits", "allowed_tools": ("Read", "Bash(git log:*)"), "model": "sonnet"},
    "skipping": {"permission_mode": "acceptEdits", "skip_permissions": True},
    "plain": {},
    "resumed": {"resume": True, "model": "opus", "permission_mode": "default"},
    "mcp": {"mcp_config": json.dumps({"mcpServers": {"echo": {"type": "stdio", "command": "/usr/bin/true"}}})},
}


def sdk_argv(spec: LiveSpec) -> list[str]:
    """What the SDK's subprocess transport runs for the options the spec stands for (SDK-private:
    this test is where an SDK upgrade that changes its flags shows)."""
    ask = not spec.skip_permissions
    options = ClaudeAgentOptions(
        cli_path=spec.cli,
        cwd=spec.cwd,
        resume=spec.session_id if spec.resume else None,
        session_id=None if spec.resume else spec.session_id,
        permission_mode="bypassPermissions" if spec.skip_permissions else spec.permission_mode,  # type: ignore[arg-type]
        allowed_tools=list(spec.allowed_tools),
        model=spec.model,
        system_prompt={"type": "preset", "preset": "claude_code"},
        setting_sources=[],
        add_dirs=[spec.cwd],
        include_partial_messages=True,
        permission_prompt_tool_name="stdio" if ask else None,
        mcp_servers=json.loads(spec.mcp_config)["mcpServers"] if spec.mcp_config else {},
        strict_mcp_config=True,
    )
    argv = SubprocessCLITransport(prompt="", options=options)._build_command()
    if "--model" in argv:
        # The one difference, on purpose: the model as one word, so that no value is read as a flag.
        at = argv.index("--model")
        argv[at : at + 2] = [f"--model={argv[at + 1]}"]
    return argv


@pytest.mark.parametrize("name", SPECS)
async def test_the_cli_gets_the_flags_the_sdk_would_give_it(start: Start, tmp_path: Path, name: str) -> None:
    session = await start(**{"resume": False, **SPECS[name]})
    [received] = records(tmp_path, "argv")
    assert [session.spec.cli, *received] == sdk_argv(session.spec)
    assert [session.spec.cli, *received] == cli_argv(session.spec, ask=not session.spec.skip_permissions)


def test_an_id_or_model_that_looks_like_a_flag_stays_the_value_of_its_own_flag(tmp_path: Path) -> None:
    spec = LiveSpec(cli="claude", cwd=str(tmp_path), session_id=SID, resume=True, env={}, model="--debug")
    argv = cli_argv(spec, ask=True)
    assert f"--resume={SID}" in argv and "--model=--debug" in argv and "--debug" not in argv
    fresh = dataclasses.replace(spec, resume=False)
    assert f"--session-id={SID}" in cli_argv(fresh, ask=True)
