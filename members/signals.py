"""Hooks for what else records sign-ins (an audit log, say): sent by members/web/oidc.py.

``signed_in_with_provider``: ``request``, ``user``, ``created`` (a new member made by this sign-in)
and ``invite`` (the invite it used up, or None), after the member is logged in. Django's own
``user_logged_in`` is sent as well, as for every log-in.
``provider_sign_in_refused``: ``request`` and ``reason`` (the text the person was shown).
"""

from __future__ import annotations

from django.dispatch import Signal

signed_in_with_provider = Signal()
provider_sign_in_refused = Signal()
