from django.urls import path

from . import views

app_name = "tasks"

urlpatterns = [
    path("", views.board, name="board"),
    path("new/", views.new_task, name="new"),
    path("<int:task_id>/", views.detail, name="detail"),
    path("<int:task_id>/diff/", views.diff, name="diff"),
    path("<int:task_id>/pull-request/refresh/", views.refresh_pull_request, name="refresh-pr"),
    path("<int:task_id>/<slug:name>/", views.action, name="action"),
]
