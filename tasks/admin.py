"""Tasks in the admin: read-only; people act on tasks from the board, where the state table applies."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Task


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin[Task]):
    list_display = ["id", "title", "status", "priority", "created_by", "branch", "tokens", "cost_usd", "created_at"]
    list_filter = ["status", "skip_permissions"]
    search_fields = ["title", "prompt", "created_by__username"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False
