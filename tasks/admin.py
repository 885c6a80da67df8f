"""Tasks in the admin: read-only; people act on tasks from the board, where the state table applies.
A shared project's setup and check commands are set here."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from chat.projects import OWN

from .models import ProjectChecks, Task, TaskTransition


class TransitionsInline(admin.TabularInline[TaskTransition, Task]):
    """A task's changes of state on its admin page, oldest first, read-only."""

    model = TaskTransition
    fields = readonly_fields = ("at", "event", "from_status", "to_status", "reason", "by", "why")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin[Task]):
    inlines = [TransitionsInline]
    list_display = ["id", "title", "status", "priority", "created_by", "branch", "tokens", "cost_usd", "created_at"]
    list_filter = ["status", "skip_permissions"]
    search_fields = ["title", "prompt", "created_by__username"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False


@admin.register(TaskTransition)
class TaskTransitionAdmin(admin.ModelAdmin[TaskTransition]):
    """The audit rows of tasks' changes of state: read-only, as they happened."""

    list_display = ["at", "task", "from_status", "to_status", "reason", "event", "by", "why"]
    list_filter = ["event", "to_status"]
    search_fields = ["why", "by__username", "task__title"]
    list_select_related = ["task", "by"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TaskTransition | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TaskTransition | None = None) -> bool:
        return False


class ProjectChecksForm(forms.ModelForm[ProjectChecks]):
    project = forms.ChoiceField(
        help_text="A shared project of CLAUDE_PROJECTS. Members set their own folder's checks under Settings."
    )

    class Meta:
        model = ProjectChecks
        fields = ["project", "setup_command", "check_command", "max_check_runs", "timeout_seconds"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        project = self.fields["project"]
        assert isinstance(project, forms.ChoiceField)
        project.choices = [(key, key) for key in sorted(settings.CLAUDE_PROJECTS) if key != OWN]

    def validate_unique(self) -> None:
        # The model's constraint names no field the form shows (owner is always empty here): said plainly.
        super().validate_unique()
        others = ProjectChecks.objects.filter(project=self.cleaned_data.get("project"), owner__isnull=True)
        if others.exclude(pk=self.instance.pk).exists():
            self.add_error("project", "This project has its checks already: change that row instead.")


@admin.register(ProjectChecks)
class ProjectChecksAdmin(admin.ModelAdmin[ProjectChecks]):
    """A shared project's setup and check commands (they run in its tasks' sandboxes, see the README)."""

    form = ProjectChecksForm
    list_display = ["project", "setup_command", "check_command", "max_check_runs", "timeout_seconds", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProjectChecks]:
        # A member's own folder's commands are theirs (Settings): not listed here.
        return super().get_queryset(request).filter(owner__isnull=True)
