"""Pages of the team features that live outside the chat app's own URLs."""

from django.urls import path

from . import views_archive, views_settings

app_name = "team"

urlpatterns = [
    path("chat/<uuid:session_id>/restore/", views_archive.restore, name="restore"),
    path("settings/", views_settings.settings_page, name="settings"),
    path("settings/token/", views_settings.regenerate, name="regenerate-token"),
]
