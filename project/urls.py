from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("chat.tasks.api_urls")),
    path("api/", include("chat.api_urls")),
    path("tasks/", include("chat.tasks.urls")),
    path("", include("chat.team_urls")),
    path("", include("chat.urls")),
]
