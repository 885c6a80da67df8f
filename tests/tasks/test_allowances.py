"""The words that say what a task's agent may do follow the settings in force."""

from __future__ import annotations

from drivers.egress import parse_allowed_hosts
from tasks.allowances import task_may


def test_by_default_a_task_works_in_its_sandbox_with_its_listed_tools_and_asks_for_the_rest(settings):
    settings.CLAUDE_SANDBOX = "bwrap"
    settings.CLAUDE_TASK_ALLOWED_TOOLS = ["Read", "Edit", "Write"]
    settings.CLAUDE_TASK_PERMISSION_MODE = "acceptEdits"
    settings.CLAUDE_AGENT_ALLOWED_HOSTS = parse_allowed_hosts("")
    words = task_may(skip_permissions=False)
    assert words.startswith("Off (the default), the agent uses Read, Edit, Write without asking.")
    assert "permission mode acceptEdits" in words and "(ls, mkdir, touch, rm)" in words
    assert "Any other tool call (another shell command, a web fetch) asks on the task's page" in words
    assert "its network leads only to the model API, through the server's egress proxy" in words

    risky = task_may(skip_permissions=True)
    assert "any shell command and changes any file without asking, inside its sandbox" in risky
    assert "not the server's files" in risky and "the server's user" not in risky


def test_the_words_name_the_allowed_hosts_a_shell_among_the_tools_and_another_mode(settings):
    settings.CLAUDE_SANDBOX = "bwrap"
    settings.CLAUDE_TASK_ALLOWED_TOOLS = ["Read", "Bash"]
    settings.CLAUDE_TASK_PERMISSION_MODE = "default"
    settings.CLAUDE_AGENT_ALLOWED_HOSTS = parse_allowed_hosts("pypi.org,files.pythonhosted.org")
    words = task_may(skip_permissions=False)
    assert "uses Read, Bash without asking: any shell command too." in words
    assert "only read (ls, git status; permission mode default)" in words
    assert "(a web fetch, say)" in words
    assert "the model API and pypi.org, files.pythonhosted.org" in task_may(skip_permissions=True)

    settings.CLAUDE_TASK_PERMISSION_MODE = "plan"
    assert "only reads and plans" in task_may(skip_permissions=False)
    assert "asks on the task's page" not in task_may(skip_permissions=False)


def test_without_the_sandbox_skip_permissions_reaches_what_the_server_can(settings):
    settings.CLAUDE_SANDBOX = "off"
    risky = task_may(skip_permissions=True)
    assert "CLAUDE_SANDBOX is off" in risky and "any file the server's user can reach" in risky
    assert "sandbox" not in task_may(skip_permissions=False).replace("CLAUDE_SANDBOX", "")
