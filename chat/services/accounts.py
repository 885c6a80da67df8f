"""First-run set-up: an admin account a newcomer can log in with."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model

ADMIN_NAME = "admin"


def ensure_admin(*, data_dir: Path, login_url: str) -> str:
    """Create an admin account if there is no user at all; say how to log in either way."""
    User = get_user_model()
    note = data_dir / "first-login.txt"
    if not User.objects.exists():
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(ADMIN_NAME, email="", password=password)
        data_dir.mkdir(parents=True, exist_ok=True)
        note.write_text(f"username: {ADMIN_NAME}\npassword: {password}\n")
        note.chmod(0o600)
        return (f"Created an admin account. Log in at {login_url}\n"
                f"    username: {ADMIN_NAME}\n    password: {password}\n"
                f"(also saved in {note}; change it in the admin once logged in)")
    if note.exists():
        return f"Log in at {login_url} (the first-run account is in {note})."
    return f"Log in at {login_url}."
