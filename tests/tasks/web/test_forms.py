"""The new-task form refuses bad input with a reason per field, before any service runs."""

from __future__ import annotations

import pytest

from tasks.web.forms import TaskForm
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x", "priority": "high"}, "priority"),
        ({"prompt": "x", "priority": str(10**6)}, "priority"),
        ({"prompt": "x", "project": "nope"}, "project"),
        ({"prompt": "x", "title": "t" * 200}, "title"),
    ],
)
def test_bad_input_is_refused_with_reasons(data, field):
    form = TaskForm(data, user=make_user())
    assert not form.is_valid()
    assert field in form.errors_by_field()


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"prompt": "x", "title": "nul \x00 here"}, "title", "NUL character"),
        ({"prompt": "x", "title": "hi \ud800 there"}, "title", "lone surrogate"),
        ({"prompt": "nul \x00 here"}, "prompt", "NUL character"),
        ({"prompt": "hi \udfff there"}, "prompt", "lone surrogate"),
    ],
)
def test_text_that_cannot_be_stored_is_refused_by_field(data, field, says):
    form = TaskForm(data, user=make_user())
    assert not form.is_valid()
    assert says in form.errors_by_field()[field]


def test_a_prompt_over_the_limit_is_refused(settings):
    settings.CLAUDE_MAX_MESSAGE_CHARS = 10
    form = TaskForm({"prompt": "x" * 11}, user=make_user())
    assert not form.is_valid() and "limit of 10" in form.errors_by_field()["prompt"]


def test_good_input_is_cleaned():
    form = TaskForm({"prompt": "Add a CHANGELOG", "priority": "5", "project": "default", "yolo": "1"}, user=make_user())
    assert form.is_valid(), form.errors
    assert form.cleaned_data["priority"] == 5 and form.cleaned_data["yolo"] is True
