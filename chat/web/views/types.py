"""The request type of views behind django-htmx's middleware (as in django-htmx's example app)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from runtime import Engine


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    # Set by project.engine.EngineMiddleware: the engine the composition root handed down.
    engine: Engine


class AuthedRequest(HtmxHttpRequest):
    """A request of a view behind ``login_required``: its user is a real account."""

    user: User
