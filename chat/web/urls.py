from django.urls import path

from . import theme
from .views import archive, chats, settings, share

app_name = "chat"

urlpatterns = [
    path("", chats.index, name="index"),
    path("chat/new/", chats.new_chat, name="new"),
    path("chat/<uuid:session_id>/", chats.session_page, name="session"),
    path("chat/<uuid:session_id>/older/", chats.older, name="older"),
    path("chat/<uuid:session_id>/rename/", chats.rename, name="rename"),
    path("chat/<uuid:session_id>/delete/", chats.delete, name="delete"),
    path("chat/<uuid:session_id>/stop/", chats.stop, name="stop"),
    path("chat/<uuid:session_id>/attach/", chats.attach, name="attach"),
    path("chat/<uuid:session_id>/model/", chats.choose_model, name="model"),
    path("chat/<uuid:session_id>/plan-mode/", chats.plan_mode, name="plan-mode"),
    path("chat/<uuid:session_id>/mcp/", chats.mcp_server, name="mcp"),
    path("chat/<uuid:session_id>/restore/", archive.restore, name="restore"),
    path("chat/<uuid:session_id>/share/", share.share, name="share"),
    path("chat/<uuid:session_id>/share/new/", share.create, name="share-create"),
    path("chat/<uuid:session_id>/share/<int:link_id>/revoke/", share.revoke, name="share-revoke"),
    # Anyone with the link, no login: the token is the only key.
    path("share/<str:token>/", share.shared, name="shared"),
    path("share/<str:token>/older/", share.shared_older, name="shared-older"),
    path("settings/", settings.settings_page, name="settings"),
    path("settings/token/", settings.regenerate, name="regenerate-token"),
    path("theme/", theme.choose, name="theme"),
]
