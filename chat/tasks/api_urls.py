from django.urls import path

from . import api

# Full paths, included at the root: the API has no trailing slashes, like the chat API.
urlpatterns = [
    path("api/tasks", api.tasks, name="api-tasks"),
    path("api/tasks/<int:task_id>", api.task, name="api-task"),
    path("api/tasks/<int:task_id>/<slug:name>", api.task_action, name="api-task-action"),
]
