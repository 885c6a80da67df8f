from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.services.tokens import issue_token


class Command(BaseCommand):
    help = (
        "Make a new API token for a user and print it (the token is the last word). Only a hash is kept, "
        "so it cannot be shown again; a token the user had stops working."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, username: str, **options: object) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(
                f"There is no user {username!r}. Create it first (manage.py createsuperuser, or the admin)."
            ) from None
        self.stdout.write(f"API token for {username}: {issue_token(user=user).key}")
