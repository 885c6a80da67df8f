"""Tasks in the admin: read-only; people act on tasks from the board, where the state table applies."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Task, TaskTransition


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
