from django.contrib import admin
from django.urls import include, path

# The admin is the app's own, by name.
admin.site.site_header = "Claude Code chat admin"
admin.site.site_title = "Claude Code chat admin"
admin.site.index_title = "Site administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    # members' first: its login page (the identity provider's button) takes the place of Django's.
    path("accounts/", include("members.web.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("api.urls")),
    path("tasks/", include("tasks.web.urls")),
    path("team/", include("team.web.urls")),
    path("workspace/", include("workspace.web.urls")),
    path("", include("chat.web.urls")),
]
