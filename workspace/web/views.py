"""The workspace's pages: Files (a lazy tree, a file, downloads, uploads, edits), Changes (git) and
the Terminal's page. Each view asks :mod:`workspace.selectors` whose folder it is and what the person
may do there (403 for a change they may not make, 404 for a folder they may not see); the work is
the services'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from chat.web.views.types import AuthedRequest

from .. import selectors
from ..services import archive, changes, edits, files, names
from ..services.files import FileRefused, Version
from ..services.tree import level as tree_level

View = Callable[..., HttpResponseBase]


def _refused(request: AuthedRequest, message: str, status: int) -> HttpResponse:
    return render(request, "workspace/refused.html", {"message": message}, status=status)


def _place(request: AuthedRequest, kind: str, pk: str, *, work: bool = False) -> selectors.Place:
    find = selectors.working_place if work else selectors.place_for
    return find(user=request.user, kind=kind, pk=pk)


def _files_url(place: selectors.Place, *, path: str = "", open_: str = "") -> str:
    query = {key: value for key, value in (("path", path), ("open", open_)) if value}
    url = reverse("workspace:files", args=[place.kind, place.pk])
    return f"{url}?{urlencode(query)}" if query else url


def _guarded(view: View) -> View:
    """Refusals of who may (and of the services) as a page with the reason and its status."""

    def wrapped(request: AuthedRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return view(request, *args, **kwargs)
        except selectors.PlaceRefused as exc:
            return _refused(request, str(exc), exc.status)
        except FileRefused as exc:
            return _refused(request, str(exc), exc.status)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _context(place: selectors.Place, **more: Any) -> dict[str, Any]:
    return {
        "place": place,
        # Reversed once, not for each of a level's 500 entries.
        "files_url": reverse("workspace:files", args=[place.kind, place.pk]),
        "tree_url": reverse("workspace:tree", args=[place.kind, place.pk]),
        "upload_mb": settings.CLAUDE_WORKSPACE_UPLOAD_MB,
        "upload_bytes": edits.upload_limit(),
        **more,
    }


def _listing(place: selectors.Place, path: str) -> files.Listing:
    return async_to_sync(tree_level)(place=place, path=path)


# ---------------------------------------------------------------------------------------
# Files


@login_required
@require_GET
@_guarded
def files_page(request: AuthedRequest, kind: str, pk: str) -> HttpResponse:
    place = _place(request, kind, pk)
    path = request.GET.get("path", "")
    opened_path = request.GET.get("open", "")
    opened = files.open_file(place=place, path=opened_path) if opened_path else None
    if opened is not None and opened.kind == "folder":
        return HttpResponseRedirect(_files_url(place, path=opened.path))
    listing = _listing(place, path)
    return render(request, "workspace/files.html", _context(place, listing=listing, opened=opened))


@login_required
@require_GET
@_guarded
def tree(request: AuthedRequest, kind: str, pk: str) -> HttpResponse:
    """One level of the tree (htmx loads it when a folder opens, and again when the agent wrote)."""
    place = _place(request, kind, pk)
    listing = _listing(place, request.GET.get("path", ""))
    return render(request, "workspace/files.html#level", _context(place, listing=listing))


@login_required
@require_GET
@_guarded
def download(request: AuthedRequest, kind: str, pk: str) -> HttpResponseBase:
    place = _place(request, kind, pk)
    path = request.GET.get("path", "")
    handle, size, media = files.download(place=place, path=path)
    response = FileResponse(handle, as_attachment=True, filename=path.rsplit("/", 1)[-1], content_type=media)
    response["Content-Length"] = str(size)
    return response


@login_required
@require_GET
@_guarded
def image(request: AuthedRequest, kind: str, pk: str) -> HttpResponseBase:
    place = _place(request, kind, pk)
    handle, media = files.image(place=place, path=request.GET.get("path", ""))
    response = FileResponse(handle, content_type=media)
    response["Content-Disposition"] = "inline"
    return response


@login_required
@require_GET
@_guarded
def zipped(request: AuthedRequest, kind: str, pk: str) -> HttpResponseBase:
    place = _place(request, kind, pk)
    path = request.GET.get("path", "")
    chunks: Iterator[bytes] = archive.zipped(place=place, path=path)
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    # Quoted (and RFC 5987 for names beyond ASCII) as Django's file responses do.
    response["Content-Disposition"] = content_disposition_header(True, archive.zip_name(path, place))
    return response


def _back(request: AuthedRequest, place: selectors.Place, *, folder: str = "", open_: str = "") -> HttpResponse:
    url = _files_url(place, path=folder, open_=open_)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


def _acting(view: View) -> View:
    """A change to the files: a refusal goes back to the folder with its reason shown."""

    def wrapped(request: AuthedRequest, kind: str, pk: str) -> HttpResponseBase:
        place = _place(request, kind, pk, work=True)
        folder = request.POST.get("folder", "")
        try:
            return view(request, place, folder)
        except FileRefused as exc:
            if request.htmx:
                return HttpResponse(str(exc), status=exc.status, content_type="text/plain; charset=utf-8")
            messages.error(request, str(exc))
            return _back(request, place, folder=folder if _safe(folder) else "")

    wrapped.__name__ = view.__name__
    return login_required(require_POST(_guarded(wrapped)))


@csrf_exempt  # checked below, once the size limit's handler is in place (it must come before the body is read)
def upload(request: HttpRequest, kind: str, pk: str) -> HttpResponseBase:
    request.upload_handlers.insert(0, _Limited(request, edits.upload_limit()))
    return csrf_protect(_upload)(request, kind, pk)


def _safe(path: str) -> bool:
    try:
        names.check_path(path)
    except ValueError:
        return False
    return True


class _Limited(FileUploadHandler):
    """Stops reading an upload as soon as one of its files passes the limit: Django would otherwise
    write the whole body to the server's temporary folder before the view could refuse it."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.too_large = ""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > self.limit:
            self.too_large = self.file_name or "a file"
            raise StopUpload(connection_reset=False)  # the rest is read and dropped: the page still gets its answer
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler keeps the file


@_acting
def _upload(request: AuthedRequest, place: selectors.Place, folder: str) -> HttpResponse:
    limit = next(handler for handler in request.upload_handlers if isinstance(handler, _Limited))
    uploaded: list[UploadedFile[bytes]] = request.FILES.getlist("files")
    if limit.too_large:
        raise FileRefused(
            f"{limit.too_large[:80]} is larger than uploads may be ({settings.CLAUDE_WORKSPACE_UPLOAD_MB:g} MB, "
            "CLAUDE_WORKSPACE_UPLOAD_MB): nothing was uploaded.",
            status=413,
        )
    if not uploaded:
        raise FileRefused("Pick one or more files to upload.")
    for item in uploaded:
        edits.upload(place=place, folder=folder, name=item.name or "file", chunks=item.chunks(), size=item.size or 0)
    messages.success(request, f"Uploaded {len(uploaded)} file{'s' if len(uploaded) != 1 else ''}.")
    return _back(request, place, folder=folder)


@_acting
def new(request: AuthedRequest, place: selectors.Place, folder: str) -> HttpResponse:
    name = request.POST.get("name", "")
    if request.POST.get("what") == "folder":
        made = edits.create_folder(place=place, folder=folder, name=name)
        return _back(request, place, folder=made)
    made = edits.create_file(place=place, folder=folder, name=name)
    return _back(request, place, folder=folder, open_=made)


@_acting
def rename(request: AuthedRequest, place: selectors.Place, folder: str) -> HttpResponse:
    made = edits.rename(place=place, path=request.POST.get("path", ""), new_name=request.POST.get("name", ""))
    messages.success(request, f"Renamed to {made}.")
    return _back(request, place, folder=folder)


@_acting
def delete(request: AuthedRequest, place: selectors.Place, folder: str) -> HttpResponse:
    path = request.POST.get("path", "")
    edits.delete(place=place, path=path)
    messages.success(request, f"Deleted {path}.")
    return _back(request, place, folder=folder)


@login_required
@require_POST
@_guarded
def save(request: AuthedRequest, kind: str, pk: str) -> HttpResponse:
    place = _place(request, kind, pk, work=True)
    path = request.POST.get("path", "")
    text = request.POST.get("text", "")
    folder = path.rpartition("/")[0]
    try:
        expected = Version.of_form(request.POST)
    except ValueError:
        return _refused(
            request, "The form lacks the version of the file it opened: reload the file and edit again.", 400
        )
    try:
        edits.save(place=place, path=path, text=text, expected=expected)
    except edits.EditConflict as exc:
        listing = _listing(place, folder)
        context = _context(place, listing=listing, opened=exc.current, conflict=str(exc), mine=text)
        return render(request, "workspace/files.html", context, status=409)
    messages.success(request, f"Saved {path}.")
    return _back(request, place, folder=folder, open_=path)


# ---------------------------------------------------------------------------------------
# Changes


@login_required
@require_GET
@_guarded
def changes_page(request: AuthedRequest, kind: str, pk: str) -> HttpResponse:
    place = _place(request, kind, pk)
    overview = async_to_sync(changes.overview)(place=place)
    shown = request.GET.get("diff", "")
    patch = async_to_sync(changes.file_diff)(place=place, path=shown) if shown else None
    return render(request, "workspace/changes.html", _context(place, overview=overview, patch=patch, shown=shown))


@login_required
@require_POST
@_guarded
def change_action(request: AuthedRequest, kind: str, pk: str, action: str) -> HttpResponse:
    place = _place(request, kind, pk, work=True)
    path = request.POST.get("path", "")
    url = reverse("workspace:changes", args=[place.kind, place.pk])
    try:
        if action == "stage":
            async_to_sync(changes.stage)(place=place, path=path)
        elif action == "unstage":
            async_to_sync(changes.unstage)(place=place, path=path)
        elif action == "discard":
            async_to_sync(changes.discard)(place=place, path=path)
            messages.success(request, f"Discarded the changes of {path}.")
        elif action == "commit":
            user = request.user
            sha = async_to_sync(changes.commit)(
                place=place,
                message=request.POST.get("message", ""),
                author=user.get_full_name() or user.get_username(),
                email=user.email or f"{user.get_username()}@localhost",
            )
            messages.success(request, f"Committed {sha}.")
        else:
            return _refused(request, "There is no such action.", 404)
    except FileRefused as exc:
        messages.error(request, str(exc))
    return HttpResponseRedirect(url)


# ---------------------------------------------------------------------------------------
# Terminal


@login_required
@require_GET
@_guarded
def terminal_page(request: AuthedRequest, kind: str, pk: str) -> HttpResponse:
    place = _place(request, kind, pk, work=True)
    minutes = round(settings.CLAUDE_TERMINAL_IDLE_SECONDS / 60, 1)
    return render(request, "workspace/terminal.html", _context(place, idle_minutes=f"{minutes:g}"))
