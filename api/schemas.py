"""What the API's request schemas share: each field says, in its declaration, what to answer
when it is wrong, with which HTTP status; and limits read from settings when they are used.

A request schema subclasses :class:`Request`. A field's :class:`Refusal` is the answer when the
field is missing or of the wrong type or form; validators that check more (a length read from
settings, a known project) raise :func:`refused` with their own words and status. The API's one
validation handler (:mod:`api.errors`) turns these errors into ``{"error": ...}`` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar

import pydantic
from django.conf import settings
from pydantic import AfterValidator, BaseModel, PlainSerializer, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

REFUSED = "refused"

# Times are answered as ISO 8601 with the offset (what datetime.isoformat gives), as before.
IsoTime = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def refused(text: str, status: int = 400, **context: Any) -> PydanticCustomError:
    """A validation error the API answers with ``text`` and ``status`` as they are (the text is
    read from the context: pydantic would fill "{...}" placeholders a client may have sent)."""
    return PydanticCustomError(REFUSED, "{text}", {"text": text, "status": status, **context})


@dataclass(frozen=True)
class Refusal:
    """Field metadata: the answer when the field is missing, or not of its type or form
    (``text`` may be a function of the value sent, None when it is missing)."""

    text: str | Callable[[Any], str]
    status: int = 400

    def text_for(self, value: Any) -> str:
        return self.text(value) if callable(self.text) else self.text


@dataclass(frozen=True)
class FromSettings:
    """JSON-schema keywords read from settings each time the OpenAPI document is generated
    (tests and operators change the limits the validators read at run time)."""

    keywords: Callable[[], dict[str, Any]]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: pydantic.GetJsonSchemaHandler) -> dict[str, Any]:
        schema = handler(core_schema)
        schema.update(self.keywords())
        return schema


class Request(BaseModel):
    """A request schema whose errors are its fields' :class:`Refusal` texts.

    ``not_an_object`` answers a body that is not a JSON object; ``fields_in_errors`` adds
    ``"fields": {name: reason}`` to the answer (the tasks API's errors carry it)."""

    not_an_object: ClassVar[str] = "The body must be a JSON object."
    fields_in_errors: ClassVar[bool] = False

    @model_validator(mode="wrap")
    @classmethod
    def _explain(cls, data: Any, handler: pydantic.ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except pydantic.ValidationError as exc:
            errors = [cls._explained(error) for error in exc.errors()]
            raise pydantic.ValidationError.from_exception_data(cls.__name__, errors) from None

    @classmethod
    def _explained(cls, error: Any) -> Any:
        loc, value = error["loc"], error.get("input")
        name = loc[0] if loc and isinstance(loc[0], str) else None
        refusal = (
            next((m for m in cls.model_fields[name].metadata if isinstance(m, Refusal)), None)
            if name in cls.model_fields
            else None
        )
        if error["type"] == REFUSED:
            status, text = error["ctx"]["status"], error["ctx"]["text"]
        elif not loc:
            status, text = 400, cls.not_an_object
        elif name not in cls.model_fields:
            status, text = 400, f"Unknown field {name!r}; send only {', '.join(cls.model_fields)}."
        elif refusal is not None:
            status, text = refusal.status, refusal.text_for(None if error["type"] == "missing" else value)
        else:
            status, text = 400, f"{name}: {error['msg']}."
        error = refused(text, status, field=name, fields_in_errors=cls.fields_in_errors)
        return {"type": error, "loc": loc, "input": value}


def _within_limit(text: str, info: pydantic.ValidationInfo) -> str:
    limit = settings.CLAUDE_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise refused(
            f"{info.field_name} is {len(text):,} characters long; the limit is {limit:,}. Send less text.", 413
        )
    if not text.strip():
        raise ValueError("blank")  # answered with the field's Refusal
    return _storable(text, info)


def _storable(text: str, info: pydantic.ValidationInfo) -> str:
    """Text every database keeps as it is: PostgreSQL refuses NUL, and a lone surrogate is not text."""
    if "\x00" in text:
        raise refused(f"{info.field_name} holds a NUL character, which cannot be stored. Remove it and send again.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise refused(
            f"{info.field_name} holds a lone surrogate (\\ud800-\\udfff on its own), which is not text. "
            "Send valid UTF-16 pairs or UTF-8."
        ) from None
    return text


# Any text field that is stored: no NUL, no lone surrogate.
StorableText = Annotated[str, AfterValidator(_storable)]


# Text that is not blank and not longer than CLAUDE_MAX_MESSAGE_CHARS (read when it is checked).
LimitedText = Annotated[
    str,
    AfterValidator(_within_limit),
    FromSettings(lambda: {"minLength": 1, "maxLength": settings.CLAUDE_MAX_MESSAGE_CHARS}),
]


class Error(BaseModel):
    """Every error answer."""

    error: str


class FieldErrors(BaseModel):
    """The tasks API's answer to bad input: the reasons, and each by the field it is about."""

    error: str
    fields: dict[str, str] = {}
