"""The MCP servers an admin configured for a project, and what makes one valid.

Kept apart from :mod:`chat.models` (which re-exports it, so Django registers it with the chat app
and callers import it from there): it is an admin's configuration, with validation of its own, not
a record of a chat; :mod:`chat.services.mcp` turns it into what the CLI gets.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

MCP_NAME_RE = r"^[a-z0-9_-]{1,40}$"


class McpServer(models.Model):
    """An MCP server an admin configured for a project: the CLI of every chat and task there starts
    it (stdio: a program run inside the agent's sandbox) or connects to it (http: through the egress
    proxy). Only the server's admins write these (the agent can read its own CLI's configuration,
    so nothing here is secret)."""

    class Kind(models.TextChoices):
        STDIO = "stdio", "stdio (a program in the agent's sandbox)"
        HTTP = "http", "HTTP (a URL, through the egress proxy)"

    project = models.CharField(
        max_length=64, help_text='A key of CLAUDE_PROJECTS, or "default" for every member\'s own folder.'
    )
    name = models.CharField(
        max_length=40,
        validators=[RegexValidator(MCP_NAME_RE, "Lower-case letters, digits, _ and - only (at most 40).")],
        help_text="The model sees its tools as mcp__<name>__<tool>.",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.STDIO)
    command = models.CharField(
        max_length=1024, blank=True, help_text="stdio: the program, as the sandbox sees it (e.g. /usr/bin/python3)."
    )
    args = models.JSONField(default=list, blank=True, help_text="stdio: its arguments, a JSON list of strings.")
    env = models.JSONField(
        default=dict,
        blank=True,
        help_text="stdio: variables it gets, a JSON object of literal strings. The agent can read them: no secrets.",
    )
    url = models.URLField(
        max_length=2048,
        blank=True,
        help_text="http: the server's URL; agents reach it through the egress proxy, never directly.",
    )
    secret_env = models.CharField(
        "secret's variable",
        max_length=100,
        blank=True,
        help_text="http: the NAME of a variable of the server's environment whose value the egress proxy sends "
        "as Authorization: Bearer <value>. No agent and no member sees the value.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name = "MCP server"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="mcp_server_unique_name")]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.project})"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        known = {"default", *settings.CLAUDE_PROJECTS}
        if self.project not in known:
            errors["project"] = f"No project {self.project!r}: one of {', '.join(sorted(known))}."
        if self.kind == self.Kind.STDIO:
            if not self.command.strip():
                errors["command"] = "A stdio server needs the program to run."
            if not isinstance(self.args, list) or not all(isinstance(arg, str) for arg in self.args):
                errors["args"] = 'A JSON list of strings, e.g. ["-m", "my_server"].'
            if not isinstance(self.env, dict) or not all(
                isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
                for key, value in self.env.items()
            ):
                errors["env"] = 'A JSON object of names and strings, e.g. {"LOG_LEVEL": "info"}.'
        elif not self.url.startswith(("https://", "http://")):
            errors["url"] = "An HTTP server needs its http:// or https:// URL."
        if self.secret_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.secret_env):
            errors["secret_env"] = "The name of an environment variable (letters, digits and _), not its value."
        if errors:
            raise ValidationError(errors)
