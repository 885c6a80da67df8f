"""The admin's MCP servers per project (registered by :mod:`chat.admin`): only staff write them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin

from .models import McpServer
from .projects import OWN


class McpServerForm(forms.ModelForm[McpServer]):
    project = forms.ChoiceField(help_text="Every chat and task there gets this server.")

    class Meta:
        model = McpServer
        fields = ["project", "name", "kind", "command", "args", "env", "url", "secret_env", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        project = self.fields["project"]
        assert isinstance(project, forms.ChoiceField)
        shared = [(key, f"{key} ({settings.CLAUDE_PROJECTS[key]})") for key in sorted(settings.CLAUDE_PROJECTS)]
        project.choices = [(OWN, "default (every member's own folder)"), *shared]


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin[McpServer]):
    """MCP servers the CLI of a project's chats and tasks starts (stdio, in the agent's sandbox) or
    reaches (HTTP, through the egress proxy). Members see them on their chat and may turn them off there."""

    form = McpServerForm
    list_display = ("name", "project", "kind", "command", "url", "enabled")
    list_filter = ("project", "kind", "enabled")
