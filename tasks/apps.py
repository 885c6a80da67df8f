from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self) -> None:
        # A task's session must outlive idle-chat archiving until its work is merged or discarded.
        from chat.services import archive
        from tasks import selectors

        archive.keep_sessions(selectors.open_task_sessions)
