"""The new-task form: what a person may type, checked before anything reaches the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.core.validators import MaxLengthValidator, ProhibitNullCharactersValidator

from chat import projects

from ..models import ProjectChecks
from ..services import PRIORITY_RANGE, TITLE_LENGTH


def _no_lone_surrogate(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise forms.ValidationError(
            "It holds a broken character (a lone surrogate), which cannot be stored. Paste the text again."
        ) from None


# Django refuses NUL in every text field (PostgreSQL cannot store it); said in the form's own words.
NUL = {"null_characters_not_allowed": "It holds a NUL character, which cannot be stored. Remove it and send again."}


class TaskForm(forms.Form):
    prompt = forms.CharField(
        strip=False,
        validators=[_no_lone_surrogate],
        error_messages={"required": "Say what the task should do.", **NUL},
    )
    title = forms.CharField(
        required=False,
        max_length=TITLE_LENGTH,
        validators=[_no_lone_surrogate],
        error_messages={"max_length": f"The title is longer than {TITLE_LENGTH} characters.", **NUL},
    )
    project = forms.ChoiceField(required=False)
    priority = forms.IntegerField(
        required=False,
        min_value=PRIORITY_RANGE[0],
        max_value=PRIORITY_RANGE[1],
        error_messages={
            "invalid": "The priority must be a whole number (higher runs first).",
            "min_value": f"The priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}.",
            "max_value": f"The priority must be between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}.",
        },
    )
    yolo = forms.BooleanField(required=False)

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def full_clean(self) -> None:
        # The projects open to the person are read when the form is checked (from the database).
        known = [project.key for project in projects.projects_for(self.user)]
        project = self.fields["project"]
        assert isinstance(project, forms.ChoiceField)
        project.choices = [("", "")] + [(name, name) for name in known]
        project.error_messages["invalid_choice"] = f"Unknown project; yours: {', '.join(known)}."
        limit = settings.CLAUDE_MAX_MESSAGE_CHARS
        self.fields["prompt"].validators = [
            ProhibitNullCharactersValidator(),
            _no_lone_surrogate,
            MaxLengthValidator(limit, message=f"The prompt is longer than the limit of {limit:,} characters."),
        ]
        super().full_clean()

    def clean_prompt(self) -> str:
        prompt: str = self.cleaned_data["prompt"]
        if not prompt.strip():
            raise forms.ValidationError("Say what the task should do.")
        return prompt

    def errors_by_field(self) -> dict[str, str]:
        return {field: " ".join(str(m) for m in messages) for field, messages in self.errors.items()}


class ChecksForm(forms.ModelForm[ProjectChecks]):
    """The setup and check commands of a member's own folder (the settings page's; an admin sets a
    shared project's in the admin). Commands are kept as typed: they only ever run in the sandbox."""

    class Meta:
        model = ProjectChecks
        fields = ["setup_command", "check_command", "max_check_runs", "timeout_seconds"]
        widgets = {
            "setup_command": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
            "check_command": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("setup_command", "check_command"):
            field = self.fields[name]
            assert isinstance(field, forms.CharField)
            field.strip = False  # a command's spacing is the person's
            field.validators.append(_no_lone_surrogate)
            field.error_messages.update(NUL)

    def validate_unique(self) -> None:
        pass  # one row per member's folder: the service updates theirs
