"""The websocket of the tasks board (``ws/tasks/``) and of one task's page (``ws/tasks/<id>/``).

The board socket renders the board for its own person whenever a task changes; a task's page
receives its own task's head and joins its chat session's group, so its log streams with the
same fragments (the same partials) as a chat. Only tasks the person may see are reachable.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from asgiref.sync import sync_to_async

from chat.live import notify
from chat.services import permissions
from chat.web.sockets import CLOSE_NOT_FOUND, MemberSocket, in_pool

from .. import live, selectors
from ..models import Task


@in_pool
def _visible_task(user: object, task_id: int) -> Task | None:
    return selectors.visible_tasks(user).filter(pk=task_id).select_related("session").first()  # type: ignore[arg-type]


class TasksConsumer(MemberSocket):
    async def connect(self) -> None:
        if not await self.admit():
            return
        user = self.scope["user"]
        task_id = self.scope["url_route"]["kwargs"].get("task_id")
        task = None
        if task_id is not None:
            task = await _visible_task(user, int(task_id))
            if task is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
        if task is not None and task.session is not None:
            # The person's role is read from the database: not on the event loop.
            self.may_answer = await sync_to_async(permissions.may_answer)(user=user, session=task.session)
        if task is None:
            groups = [live.BOARD_GROUP]
        else:
            groups = [live.task_group(task.pk)] + ([notify.chat_group(task.session_id)] if task.session_id else [])
        for group in groups:
            await self.join(group)  # left by the base on disconnect
        await self.accept()
        # The page may have missed fragments (a run that started before it connected, a
        # reconnect): send the current state whole.
        if task is not None:
            await self.send(
                text_data=await in_pool(live.task_page_html)(
                    task.pk, user=self.scope["user"], may_answer=self.may_answer
                )
            )
        else:
            await self.board_changed({})

    def _column(self) -> selectors.Column | None:
        """The tab of the board the page shows (``?status=`` of its socket), if it shows one."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return selectors.column_named(query.get("status", [""])[0])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Answers to the task's permission prompts; its other actions go through HTTP (buttons) and the API."""
        data = await self.read_frame(text_data)
        if data is None or not await self.still_member():
            return
        if data.get("action") == "permission":
            await self.answer_prompt(data)

    async def live_fragment(self, event: dict[str, str]) -> None:
        await self.send(text_data=event["html"])

    async def task_changed(self, event: dict[str, str]) -> None:
        """Its task changed: its head as this socket's person sees it (their buttons only)."""
        try:
            html = await in_pool(live.task_head_html)(int(event["task"]), user=self.scope["user"])
        except Task.DoesNotExist:
            return  # deleted meanwhile (the admin)
        await self.send(text_data=html)

    async def board_changed(self, event: dict[str, str]) -> None:
        html = await in_pool(live.board_html)(user=self.scope["user"], column=self._column())
        await self.send(text_data=html)
