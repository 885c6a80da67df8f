"""A person's chats: the list, one chat's page, older turns, rename, delete, stop."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from chat import projects, search, selectors
from chat.live import fragments, notify, rendered
from chat.models import Session
from chat.services import attachments, chats, disk, mcp, plans, slash, turns

from .types import AuthedRequest, HtmxHttpRequest

PER_PAGE = 25
PAGE = "chat/session.html"


@login_required
def index(request: AuthedRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    chats = selectors.chat_list(user=request.user)
    if query:
        page = search.search_page(
            user=request.user, query=query, base=chats, number=request.GET.get("page"), per_page=PER_PAGE
        )
    else:
        page = Paginator(chats, PER_PAGE).get_page(request.GET.get("page"))
    # The search box asks for the list alone, as the person types.
    template = "chat/index.html#chat-list" if request.htmx.target == "chat-list" else "chat/index.html"
    return render(request, template, {"page": page, "query": query, "projects": projects.projects_for(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def new_chat(request: AuthedRequest) -> HttpResponse:
    """A page with a message box; the chat is made when its first message is sent (then the page
    moves to the chat), so New chat leaves no empty chats behind."""
    context = {
        "projects": projects.projects_for(request.user),
        "text": "",
        "chosen_project": "",
        "chosen_model": chats.default_model(),
        # The chat its first message will make, if the page sends it over its socket (a new id each time
        # the page is shown: the form post, without JavaScript, makes a chat of its own id).
        "new_id": uuid.uuid4(),
    }
    if request.method == "GET":
        return render(request, "chat/new.html", context)
    context.update(
        text=request.POST.get("message", ""),
        chosen_project=request.POST.get("project", ""),
        chosen_model=request.POST.get("model", context["chosen_model"]),
    )
    try:
        project = projects.project_for(request.user, request.POST.get("project"))
        uploads = [(upload.name or "file", upload) for upload in request.FILES.getlist("files")]
        turn = async_to_sync(chats.start_chat)(
            engine=request.engine,
            owner=request.user,
            project=project if project.shared else None,
            model=request.POST.get("model") if chats.model_choices() else None,
            text=request.POST.get("message"),
            uploads=uploads,
        )
    except (projects.ProjectRefused, chats.ChatError) as exc:
        return render(request, "chat/new.html", {**context, "error": str(exc)}, status=400)
    except Exception as exc:
        if (full := disk.explain(exc, what="your message")) is None:
            raise
        return render(request, "chat/new.html", {**context, "error": full}, status=disk.STATUS)
    return redirect(turn.session)


def own_session(request: AuthedRequest, session_id: uuid.UUID) -> Session:
    return get_object_or_404(Session, pk=session_id, owner=request.user)


@login_required
def session_page(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = own_session(request, session_id)
    task = getattr(session, "task", None) if session.kind == Session.Kind.TASK else None
    if task is not None:
        return redirect(task)  # a task's session lives on its task's page
    page = selectors.latest_turns(session=session, events=False)
    rendered.prerender(page.turns)
    context = {"session": session, "turns": page.turns, "has_older": page.has_older, "may_answer": True}
    # The message box's menu: the slash commands this chat offers (the project's read as the page opens).
    context["commands"] = [] if session.is_archived else slash.offered(session)
    context["todos"] = session.todos or []
    context["mcp_servers"] = mcp.panel(session)
    return render(request, PAGE, context)


def older_turns(request: HtmxHttpRequest, *, session: Session, share_token: str = "", redact: str = "") -> HttpResponse:
    """The turns before ``?before=<turn id>``, with a button for the ones before those."""
    before = request.GET.get("before", "")
    anchor = selectors.turn_of(session=session, turn_id=int(before)) if before.isdigit() else None
    if anchor is None:
        raise Http404("no such turn")
    page = selectors.latest_turns(session=session, before=anchor, events=bool(redact))
    if not redact:  # a shared page hides paths: its turns render differently
        rendered.prerender(page.turns)
    return render(
        request,
        f"{PAGE}#older-turns",
        {
            "session": session,
            "turns": page.turns,
            "before": page.first,
            "has_older": page.has_older,
            "share_token": share_token,
            "redact": redact,
            "may_answer": not share_token,
        },
    )


@login_required
def older(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    return older_turns(request, session=own_session(request, session_id))


def _back(request: AuthedRequest, default: str) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


@login_required
@require_POST
def rename(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = own_session(request, session_id)
    error = ""
    try:
        chats.rename_session(session=session, title=request.POST.get("title"))
    except chats.ChatError as exc:
        error = str(exc)
    else:
        # Other open tabs of this chat show the new title too.
        async_to_sync(notify.session_changed)(session)
    # The sidebar of the page that renamed it, which may have no live connection (the list).
    sidebar = fragments.recent_chats(list(selectors.recent_chats(user_id=request.user.pk)))
    if request.htmx.target == f"chat-{session.id}":
        row = selectors.chat_list(user=request.user).get(pk=session.pk)
        context = {"s": row, "rename_error": error, "next": _back(request, reverse("chat:index"))}
        return HttpResponse(render_to_string("chat/index.html#chat-row", context, request) + sidebar)
    if request.htmx:
        form = render_to_string(f"{PAGE}#rename-form", {"session": session, "rename_error": error}, request)
        title = render_to_string(f"{PAGE}#session-title", {"session": session, "oob": True})
        return HttpResponse(form + title + sidebar)
    if error:
        messages.error(request, error)
    return redirect(_back(request, session.get_absolute_url()))


@login_required
@require_http_methods(["GET", "POST"])
def delete(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    """GET asks first; POST deletes the chat and its Claude Code transcript."""
    session = own_session(request, session_id)
    if request.method == "POST":
        title = session.display_title
        try:
            chats.delete_session(session=session, engine=request.engine, actor=request.user)
        except chats.ChatError as exc:
            messages.error(request, str(exc))
            return redirect("chat:delete", session_id=session.id)
        messages.success(request, f"Deleted “{title}”.")
        return redirect("chat:index")
    return render(
        request, "chat/delete.html", {"session": session, "busy": selectors.has_pending_turn(session=session)}
    )


@login_required
@require_POST
def attach(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    """Save the uploaded files in the chat's working directory; answers the chips the message box
    shows (each names its file for the message), or what went wrong."""
    session = own_session(request, session_id)
    files = request.FILES.getlist("files")
    if not files:
        return HttpResponse("Choose a file to attach first.", status=400, content_type="text/plain")
    if len(files) > attachments.MAX_FILES:
        return HttpResponse(
            f"At most {attachments.MAX_FILES} files can be attached to a message.",
            status=400,
            content_type="text/plain",
        )
    chips = []
    for upload in files:
        try:
            saved = attachments.save(session=session, name=upload.name or "file", data=upload)
        except attachments.AttachmentRefused as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        except Exception as exc:
            if (full := disk.explain(exc, what=f"“{upload.name}”")) is None:
                raise
            return HttpResponse(full, status=disk.STATUS, content_type="text/plain")
        chips.append(
            render_to_string(
                f"{PAGE}#attachment", {"saved": saved, "max_image_mb": attachments.MAX_IMAGE_BYTES // (1024 * 1024)}
            )
        )
    return HttpResponse("".join(chips))


@login_required
@require_POST
def choose_model(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = own_session(request, session_id)
    try:
        chats.set_model(session=session, model=request.POST.get("model"))
    except chats.ChatError as exc:
        return HttpResponse(fragments.flash(str(exc)))
    # The chat's other tabs show the model it now runs with.
    async_to_sync(notify.session_changed)(session)
    return HttpResponse(fragments.flash(f"The next messages use {session.model}.", level="info"))


@login_required
@require_POST
def plan_mode(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = own_session(request, session_id)
    try:
        plans.set_plan_mode(session=session, on=request.POST.get("plan") == "on")
    except plans.PlanRefused as exc:
        return HttpResponse(fragments.flash(str(exc)))
    async_to_sync(notify.session_changed)(session)
    said = "plan first and change nothing until you run the plan" if session.plan_mode else "work as usual"
    return HttpResponse(fragments.flash(f"The next messages {said}.", level="info"))


@login_required
@require_POST
def stop(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    session = own_session(request, session_id)
    if not async_to_sync(turns.stop_turn)(engine=request.engine, session_id=session.id):
        messages.info(request, "Nothing is running in this chat.")
    return redirect(session)


@login_required
@require_POST
def mcp_server(request: AuthedRequest, session_id: uuid.UUID) -> HttpResponse:
    """Turn one of the project's MCP servers on or off for this chat (from its next message on)."""
    session = own_session(request, session_id)
    name, on = request.POST.get("server", ""), request.POST.get("on") == "on"
    try:
        mcp.set_off(session=session, name=name, off=not on)
    except mcp.McpRefused as exc:
        return HttpResponse(fragments.flash(str(exc)))
    async_to_sync(notify.mcp_changed)(session, mcp.panel(session))
    said = "with" if on else "without"
    return HttpResponse(fragments.flash(f"The next messages run {said} the MCP server {name}.", level="info"))
