"""Services for tasks: keyword-only async functions over the database, git, the runtime and the pages."""

from ..models import may_act
from ..selectors import visible_tasks
from .common import NotAllowed, TaskNotFound, TaskRefused, get_task
from .control import act, diff, discard, merge, pause, resume, terminate
from .creation import PRIORITY_RANGE, TITLE_LENGTH, create_task
from .feedback import refresh as refresh_feedback
from .feedback import send_feedback
from .places import is_root_without_sandbox, store_for
from .pulls import open_pull_request, refresh_pull_request
from .recovery import recover_tasks
from .scheduling import TaskHooks

__all__ = [
    "PRIORITY_RANGE",
    "TITLE_LENGTH",
    "NotAllowed",
    "TaskHooks",
    "TaskNotFound",
    "TaskRefused",
    "act",
    "create_task",
    "diff",
    "discard",
    "get_task",
    "is_root_without_sandbox",
    "may_act",
    "merge",
    "open_pull_request",
    "pause",
    "recover_tasks",
    "refresh_feedback",
    "refresh_pull_request",
    "resume",
    "send_feedback",
    "store_for",
    "terminate",
    "visible_tasks",
]
