from django.urls import path

from . import api

# Included at "api/tasks": no trailing slashes, as the chat API.
urlpatterns = [
    path("", api.tasks, name="api-tasks"),
    path("/<int:task_id>", api.task, name="api-task"),
    path("/<int:task_id>/<slug:name>", api.task_action, name="api-task-action"),
]
