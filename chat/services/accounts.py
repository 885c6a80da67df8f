"""First-run set-up: an admin account a newcomer can log in with; its password is printed once, never stored."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model

ADMIN_NAME = "admin"
ADDING_MEMBERS = (
    "To add members: Settings → Invite a member makes a link that lets one person make their own account "
    "(or `scripts/manage invite`); Admin → Users → Add user, or `scripts/manage adduser NAME`, makes an "
    "account whose password is printed once."
)
# Earlier versions kept the first password in this file, where an agent could have read it.
LEGACY_NOTE = "first-login.txt"


def ensure_admin(*, data_dir: Path, login_url: str) -> str:
    """Create an admin account if there is no user at all; say how to log in either way."""
    User = get_user_model()
    lines = []
    legacy = data_dir / LEGACY_NOTE
    if legacy.exists():
        legacy.unlink()
        lines.append(
            f"Removed {legacy}: passwords are not kept in files. If anyone else could read it, change "
            "that account's password in the admin."
        )
    if not User.objects.exists():
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(ADMIN_NAME, email="", password=password)
        lines.append(
            f"Created an admin account. Log in at {login_url}\n"
            f"    username: {ADMIN_NAME}\n    password: {password}\n"
            "This password is shown only now and stored nowhere: note it, and change it in the admin once "
            "logged in. (Lost it? `scripts/manage changepassword admin`.)"
        )
    else:
        lines.append(f"Log in at {login_url}.")
    lines.append(ADDING_MEMBERS)
    return "\n".join(lines)
