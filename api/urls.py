"""The HTTP API for IDE plugins and scripts, under /api/ (see :mod:`api.api`)."""

from django.urls import URLPattern, re_path

from .api import api
from .errors import json_errors, not_found

patterns, _, app_name = api.urls

urlpatterns = [
    *(
        URLPattern(p.pattern, json_errors(p.callback), p.default_args, p.name)
        for p in patterns
        if isinstance(p, URLPattern)
    ),
    re_path(r"", not_found, name="not-found"),
]
