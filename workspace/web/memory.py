"""Project memory's page: a folder's CLAUDE.md in an editor with its rendered Markdown, for a chat, a
task or a project (the member's own folder, a shared project) from the settings page. Who may read
and who may change it are the workspace's rules (:mod:`workspace.selectors`); the work is
:mod:`workspace.services.memory`'s.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from chat import projects
from chat.markup import render_markdown
from chat.services import chats
from chat.web.views.types import AuthedRequest

from .. import selectors
from ..services import edits, memory
from ..services.files import FileRefused, Version


def _refused(request: AuthedRequest, message: str, status: int) -> HttpResponse:
    return render(request, "workspace/refused.html", {"message": message}, status=status)


def _url(place: selectors.Place, path: str = "") -> str:
    if place.kind == selectors.PROJECT:
        url = reverse("workspace:memory-project", args=[place.pk])
    else:
        url = reverse("workspace:memory", args=[place.kind, place.pk])
    return f"{url}?{urlencode({'file': path})}" if path and path != memory.NAMES[0] else url


def _page(
    request: AuthedRequest, place: selectors.Place, found: memory.Memory, status: int = 200, **more: Any
) -> HttpResponse:
    context = {
        "place": place,
        "memory": found,
        "names": memory.NAMES,
        "limit": memory.LIMIT_BYTES,
        "url": _url(place),
        "files_url": (
            reverse("workspace:files", args=[place.kind, place.pk]) if place.kind != selectors.PROJECT else ""
        ),
        **more,
    }
    return render(request, "workspace/memory.html", context, status=status)


def _expected(request: AuthedRequest) -> Version | None:
    """The version the page opened (None: it found no file); ValueError if the form lacks it."""
    if request.POST.get("missing") == "1":
        return None
    return Version.of_form(request.POST)


def _serve(request: AuthedRequest, place: selectors.Place) -> HttpResponse:
    try:
        if request.method != "POST":
            return _page(request, place, memory.open_memory(place=place, path=request.GET.get("file", "")))
        if not place.may_work:
            raise selectors.PlaceRefused(
                "You may read this memory but not change it: only the folder's owner may, and in a shared project "
                "only those the admin lets work there (Admin → Project access → may work in its files)."
            )
        path = request.POST.get("path", "")
        text = request.POST.get("text", "")
        try:
            expected = _expected(request)
        except ValueError:
            return _refused(request, "The form lacks the version of the file it opened: reload the page.", 400)
        try:
            memory.save_memory(place=place, path=path, text=text, expected=expected)
        except edits.EditConflict as exc:
            found = memory.open_memory(place=place, path=path)
            return _page(request, place, found, status=409, conflict=str(exc), mine=text)
        except FileRefused as exc:
            if exc.status in (400, 413):  # the text itself: kept in the box with the reason
                found = memory.open_memory(place=place, path=path)
                return _page(request, place, found, status=exc.status, refusal=str(exc), mine=text)
            raise
        messages.success(request, f"Saved {path}. Claude Code reads it when a session starts (see below).")
        return HttpResponseRedirect(_url(place, path))
    except selectors.PlaceRefused as exc:
        return _refused(request, str(exc), exc.status)
    except FileRefused as exc:
        return _refused(request, str(exc), exc.status)


@login_required
@require_http_methods(["GET", "POST"])
def memory_page(request: AuthedRequest, kind: str, pk: str) -> HttpResponse:
    try:
        place = selectors.place_for(user=request.user, kind=kind, pk=pk)
    except selectors.PlaceRefused as exc:
        return _refused(request, str(exc), exc.status)
    return _serve(request, place)


@login_required
@require_http_methods(["GET", "POST"])
def project_memory(request: AuthedRequest, key: str) -> HttpResponse:
    if key == projects.OWN:
        chats.own_folder_made(request.user)  # its memory may be written before its first chat
    try:
        place = selectors.project_place(user=request.user, key=key)
    except selectors.PlaceRefused as exc:
        return _refused(request, str(exc), exc.status)
    return _serve(request, place)


@login_required
@require_POST
def preview(request: AuthedRequest) -> HttpResponse:
    """The editor's text rendered as the Files page renders Markdown (htmx asks as one types). It
    reads no file and writes nothing: anyone logged in may render their own text."""
    text = request.POST.get("text", "")[: memory.LIMIT_BYTES]
    return render(request, "workspace/memory.html#preview", {"html": render_markdown(text)})
