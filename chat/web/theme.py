"""Light, dark or as the system is set: a choice per browser, kept in a cookie.

The server reads it for every page and writes it on ``<html data-theme>``, so the page's first
paint has it (no script runs first: the Content-Security-Policy allows no inline script).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

COOKIE = "theme"
THEMES = ("system", "light", "dark")
KEEP_SECONDS = 365 * 24 * 3600


def theme_of(request: HttpRequest) -> str:
    """The theme this browser picked, or "system"."""
    chosen = request.COOKIES.get(COOKIE, "")
    return chosen if chosen in THEMES else THEMES[0]


@require_POST
def choose(request: HttpRequest) -> HttpResponse:
    """Keep the theme picked (the sidebar's Theme); back to the page it was picked on, or no
    content for the page's own script, which has already shown it."""
    chosen = request.POST.get("theme", "")
    if chosen not in THEMES:
        return HttpResponse(f"Unknown theme; pick one of {', '.join(THEMES)}.", status=400)
    back = request.POST.get("next", "")
    if request.headers.get("X-Requested-With") == "fetch":
        response: HttpResponse = HttpResponse(status=204)
    elif url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        response = HttpResponseRedirect(back)
    else:
        response = HttpResponseRedirect("/")
    response.set_cookie(
        COOKIE, chosen, max_age=KEEP_SECONDS, samesite="Lax", httponly=True, secure=settings.SESSION_COOKIE_SECURE
    )
    return response
