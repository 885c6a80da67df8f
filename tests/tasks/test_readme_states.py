"""The README's table of task states is the table the code runs on (``TRANSITIONS``)."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.models import TRANSITIONS, Task, TaskEvent

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_rows() -> set[tuple[str, str, str, str, str]]:
    text = README.read_text()
    section = text[text.index("### Task states") :]
    table = section[section.index("| from | event | to | reason | waits for |") :]
    rows = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [re.sub(r"`", "", cell).strip() for cell in line.strip("|").split("|")]
        rows.add((cells[0], cells[1], cells[2], cells[3], cells[4]))
    return rows


def _waits_for(rule) -> str:
    if rule.from_reasons is None:
        return ""
    others = sorted(set(Task.Reason) - rule.from_reasons)
    if len(rule.from_reasons) <= len(others):
        return ", ".join(sorted(rule.from_reasons))
    return "not " + ", ".join(others)


def test_the_readme_table_is_the_transition_table():
    from_code = {
        (start.value, event.value, rule.to.value, rule.reason.value, _waits_for(rule))
        for (start, event), rule in TRANSITIONS.items()
    }
    assert _readme_rows() == from_code


def test_every_event_but_creation_moves_a_task_somewhere():
    assert {event for _, event in TRANSITIONS} == set(TaskEvent) - {TaskEvent.CREATE}
