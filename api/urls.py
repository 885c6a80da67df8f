"""The HTTP API for IDE plugins and scripts, under /api/."""

from django.urls import path

from . import chat, tasks

app_name = "api"

urlpatterns = [
    path("analysis/chat", chat.chat, name="chat"),
    path("claude-code/pool/status", chat.pool_status, name="pool-status"),
    path("openapi.json", chat.openapi, name="openapi"),
    path("tasks", tasks.tasks, name="tasks"),
    path("tasks/<int:task_id>", tasks.task, name="task"),
    path("tasks/<int:task_id>/<str:name>", tasks.task_action, name="task-action"),
]
