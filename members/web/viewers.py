"""Viewers on the web: every page that runs or changes something refuses them with a 403 that says why.

The services refuse a viewer too (a message, a task, an action on one, an API turn): this is the
same rule at the door, for every form a page may post, so that a page added later is covered
without remembering to be. A viewer may still sign out, change their password and theme.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from members import roles

# What a viewer may post (by URL name); and pages that only make something, which they may not open.
VIEWER_MAY_POST = frozenset(
    {"logout", "login", "password_change", "chat:theme", "chat:regenerate-token", "tasks:refresh-pr", "members:invite"}
)
MAKING_PAGES = frozenset({"chat:new", "tasks:new"})


def _refused(request: HttpRequest) -> bool:
    match = request.resolver_match
    if match is None or match.view_name.startswith("admin:") or request.path.startswith("/api/"):
        return False  # the admin checks staff itself; the API answers through its own errors
    if not request.user.is_authenticated:
        return False  # the view sends them to sign in
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return match.view_name in MAKING_PAGES and not roles.may_run(request.user)
    return match.view_name not in VIEWER_MAY_POST and not roles.may_run(request.user)


def _answer(request: HttpRequest) -> HttpResponse:
    if request.headers.get("HX-Request"):
        html = render_to_string("includes/flash.html", {"text": roles.VIEWER_REFUSAL, "level": "error", "oob": True})
        return HttpResponse(html, status=403)
    html = render_to_string("members/viewer_refused.html", {"text": roles.VIEWER_REFUSAL}, request)
    return HttpResponse(html, status=403)


class ViewerMiddleware:
    """Refuse viewers, before the view runs, what their role does not allow (see the module)."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: object, args: object, kwargs: object) -> HttpResponse | None:
        # Sync: Django runs it in a thread under ASGI, where the role may be read from the database.
        return _answer(request) if _refused(request) else None
