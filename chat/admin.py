"""Staff views of chats: find them, see what they cost, archive, stop, unshare and delete them."""

from __future__ import annotations

import uuid
from typing import Any, cast

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import ModelAdmin
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from runtime import Engine, NoEngine

from .markup import render_markdown
from .models import ApiToken, Event, ProjectAccess, Session, SessionQuerySet, ShareLink, ShareLinkQuerySet, Turn
from .services import chats, sharing, tokens, turns
from .services.archive import ArchiveError, archive_session


def _by_uuid[M: Model](queryset: QuerySet[M], search_term: str, field: str) -> QuerySet[M] | None:
    """The rows whose ``field`` is the UUID typed, or None if the term is not a UUID."""
    try:
        value = uuid.UUID(search_term.strip())
    except ValueError:
        return None
    return queryset.filter(**{field: value})


class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("yes", "Archived"), ("no", "Not archived")]

    def queryset(self, request: HttpRequest, queryset: SessionQuerySet) -> SessionQuerySet:  # type: ignore[override]
        if self.value() == "yes":
            return queryset.archived()
        if self.value() == "no":
            return queryset.active()
        return queryset


class SharedFilter(admin.SimpleListFilter):
    title = "shared"
    parameter_name = "shared"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("yes", "Has a live link"), ("no", "Private")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(shared=self.value() == "yes")
        return queryset


class ShareLinkInline(admin.TabularInline[ShareLink, Session]):
    model = ShareLink
    fields = readonly_fields = ("created_by", "created_at", "expires_at", "revoked_at", "state")
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Session | None = None) -> bool:
        # A token exists only in the owner's answer when the link is made; the admin could not show it.
        return False

    @admin.display(description="state")
    def state(self, link: ShareLink) -> str:
        return sharing.link_state(link)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin[Session]):
    list_display = (
        "display_title",
        "owner",
        "shown_status",
        "turns_link",
        "shown_tokens",
        "shown_cost",
        "shared_mark",
        "created_at",
        "last_activity_at",
    )
    list_filter = ("status", "owner", ArchivedFilter, SharedFilter)
    list_select_related = ("owner",)
    search_fields = ("title", "owner__username")
    search_help_text = "Title, owner's username, or a whole session UUID."
    fields = (
        "title",
        "id",
        "owner",
        "shown_status",
        "turns_link",
        "shown_tokens",
        "shown_cost",
        "workdir",
        "transcript_path",
        "cli_created",
        "created_at",
        "last_activity_at",
        "archived_at",
        "archive_path",
    )
    readonly_fields = tuple(name for name in fields if name != "title")
    inlines = (ShareLinkInline,)
    actions = ("archive_now", "stop_running_turn", "revoke_share_links", "delete_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        live = ShareLink.objects.live().filter(session=OuterRef("pk"))
        return cast(SessionQuerySet, super().get_queryset(request)).with_stats().annotate(shared=Exists(live))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Session], search_term: str
    ) -> tuple[QuerySet[Session], bool]:
        found = _by_uuid(queryset, search_term, "pk")
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Chats start from the chat page, which sets up their folder and transcript path.
        return False

    def save_model(self, request: HttpRequest, obj: Session, form: Any, change: bool) -> None:
        # Only the title is editable; a running turn may be updating the rest of the row meanwhile.
        obj.save(update_fields=["title"])

    # -- columns --------------------------------------------------------------------------
    @admin.display(description="title", ordering="title")
    def display_title(self, session: Session) -> str:
        return session.display_title

    @admin.display(description="status", ordering="status")
    def shown_status(self, session: Session) -> str:
        return "Archived" if session.is_archived else session.get_status_display()

    @admin.display(description="messages", ordering="turn_count")
    def turns_link(self, session: Any) -> str:
        url = reverse("admin:chat_turn_changelist") + f"?session__id__exact={session.pk}"
        return format_html('<a href="{}">{}</a>', url, session.turn_count)

    @admin.display(description="tokens", ordering="tokens")
    def shown_tokens(self, session: Any) -> int:
        return int(session.tokens or 0)

    @admin.display(description="cost", ordering="cost")
    def shown_cost(self, session: Any) -> str:
        return f"${session.cost or 0:.4f}"

    @admin.display(description="shared", boolean=True, ordering="shared")
    def shared_mark(self, session: Any) -> bool:
        return bool(session.shared)

    # -- actions --------------------------------------------------------------------------
    @admin.action(description="Archive now (move the transcript to the archive; the chat turns read-only)")
    def archive_now(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        archived = 0
        for session in queryset:
            try:
                archived += not archive_session(session=session, engine=_engine(request), actor=request.user).already
            except ArchiveError as exc:
                self.message_user(request, f"“{session}” was not archived: {exc}.", messages.ERROR)
        if archived:
            self.message_user(request, f"Archived {archived} chat{'s' if archived != 1 else ''}.", messages.SUCCESS)

    @admin.action(description="Stop the running turn")
    def stop_running_turn(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        engine = _engine(request)
        stopped = sum(async_to_sync(turns.stop_turn)(engine=engine, session_id=session.pk) for session in queryset)
        if stopped:
            self.message_user(
                request, f"Stopped the running turn of {stopped} chat{'s' if stopped != 1 else ''}.", messages.SUCCESS
            )
        else:
            self.message_user(
                request, "No turn was running in the selected chats, so nothing was stopped.", messages.INFO
            )

    @admin.action(description="Revoke share links")
    def revoke_share_links(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        revoked = sharing.revoke_share_links(
            links=ShareLink.objects.filter(session__in=queryset.values("pk")), actor=request.user
        )
        self.message_user(
            request,
            f"Revoked {revoked} share link{'s' if revoked != 1 else ''}: they now answer “not found”.",
            messages.SUCCESS,
        )

    # -- delete: through the service, so the CLI transcript goes too ------------------------
    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[str]]:
        """A summary instead of Django's list of every turn and event (thousands in a long chat)."""
        ids = [obj.pk for obj in objs]
        deletable = [
            format_html('<a href="{}">{}</a>', reverse("admin:chat_session_change", args=[obj.pk]), obj) for obj in objs
        ]
        counts = {
            "chats": len(ids),
            "messages": Turn.objects.filter(session__in=ids).count(),
            "share links": ShareLink.objects.filter(session__in=ids).count(),
            "Claude Code transcripts": len(ids),
        }
        perms_needed = set() if self.has_delete_permission(request) else {"chats"}
        busy = Session.objects.filter(pk__in=ids, turns__status__in=Turn.PENDING).distinct()
        protected = [
            f"“{session}”: a message is running or queued. Stop it, let the queue finish, then delete."
            for session in busy
        ]
        return deletable, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Session) -> None:
        try:
            chats.delete_session(session=obj, engine=_engine(request), actor=request.user)
        except chats.ChatError as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        for session in queryset:
            self.delete_model(request, session)


def _engine(request: HttpRequest) -> Engine:
    """The engine the composition root handed the request (``chat.web.engine.EngineMiddleware``)."""
    engine = getattr(request, "engine", None)
    return engine if isinstance(engine, Engine) else NoEngine()


class EventInline(admin.TabularInline[Event, Turn]):
    model = Event
    fields = readonly_fields = ("kind", "name", "shown", "data", "is_error", "created_at")
    extra = 0
    can_delete = False

    class Media:
        css = {"all": ("app/content.css",)}

    @admin.display(description="text")
    def shown(self, event: Event) -> str | SafeString:
        """An answer as the chat shows it (rendered Markdown, sanitised); other text as it is."""
        if event.kind == Event.Kind.TEXT:
            return mark_safe(f'<div class="markdown">{render_markdown(event.text, streaming=not event.complete)}</div>')
        return event.text

    def has_add_permission(self, request: HttpRequest, obj: Turn | None = None) -> bool:
        return False


class ReadOnlyAdmin[M: Model](admin.ModelAdmin[M]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False


@admin.register(Turn)
class TurnAdmin(ReadOnlyAdmin[Turn]):
    list_display = (
        "id",
        "short_prompt",
        "session",
        "author",
        "status",
        "tokens",
        "cost_usd",
        "created_at",
        "duration_ms",
    )
    list_filter = ("status",)
    list_select_related = ("session", "author")
    search_fields = ("prompt", "session__title", "author__username")
    search_help_text = "Message text, chat title, author, or a whole session UUID."
    inlines = (EventInline,)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Turn], search_term: str
    ) -> tuple[QuerySet[Turn], bool]:
        found = _by_uuid(queryset, search_term, "session_id")
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    def has_delete_permission(self, request: HttpRequest, obj: Turn | None = None) -> bool:
        # Deleting one message would leave the CLI transcript remembering it: delete the chat instead.
        return False

    @admin.display(description="message")
    def short_prompt(self, turn: Turn) -> str:
        text = " ".join(turn.prompt.split())
        return text if len(text) <= 80 else text[:79] + "…"


class ShareStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("live", "Live"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: ShareLinkQuerySet) -> ShareLinkQuerySet:  # type: ignore[override]
        now = timezone.now()
        match self.value():
            case "live":
                return queryset.live(now=now)
            case "expired":
                return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ShareLink)
class ShareLinkAdmin(ReadOnlyAdmin[ShareLink]):
    list_display = ("session", "created_by", "created_at", "expires_at", "revoked_at", "state")
    list_filter = (ShareStateFilter,)
    list_select_related = ("session", "created_by")
    search_fields = ("session__title", "created_by__username")
    actions = ("revoke",)

    @admin.display(description="state")
    def state(self, link: ShareLink) -> str:
        return sharing.link_state(link)

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        revoked = sharing.revoke_share_links(links=queryset, actor=request.user)
        self.message_user(request, f"Revoked {revoked} share link{'s' if revoked != 1 else ''}.", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    """Who has an API token and when it was last used; the key itself is never shown here."""

    list_display = ["user", "created_at", "last_used_at"]
    search_fields = ["user__username"]
    fields = ["user", "created_at", "last_used_at"]
    readonly_fields = ["user", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are made by their owner on the Settings page or with api_token

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        tokens.revoke_token(token=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset.select_related("user"):
            tokens.revoke_token(token=token, actor=request.user)


class ProjectAccessForm(forms.ModelForm[ProjectAccess]):
    project = forms.ChoiceField(help_text="A shared project of CLAUDE_PROJECTS. Staff may always use every project.")

    class Meta:
        model = ProjectAccess
        fields = ["project", "everyone", "users", "groups", "may_work"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keys = sorted(settings.CLAUDE_PROJECTS)
        project = self.fields["project"]
        assert isinstance(project, forms.ChoiceField)
        project.choices = [(key, f"{key} ({settings.CLAUDE_PROJECTS[key]})") for key in keys]


@admin.register(ProjectAccess)
class ProjectAccessAdmin(admin.ModelAdmin[ProjectAccess]):
    """Who besides staff may start chats and tasks in a shared project (and see its tasks)."""

    form = ProjectAccessForm
    list_display = ("project", "everyone", "people", "shown_groups", "may_work")
    filter_horizontal = ("users", "groups")

    @admin.display(description="members")
    def people(self, access: ProjectAccess) -> str:
        return ", ".join(user.get_username() for user in access.users.all()) or "—"

    @admin.display(description="groups")
    def shown_groups(self, access: ProjectAccess) -> str:
        return ", ".join(group.name for group in access.groups.all()) or "—"


# Registered with the rest of the chat app's admin.
from . import admin_mcp  # noqa: E402, F401
