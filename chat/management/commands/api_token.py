from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.services.tokens import regenerate_token, token_for


class Command(BaseCommand):
    help = "Print a user's API token for the HTTP API (made if the user has none). The token is the last word."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--regenerate", action="store_true", help="replace the token; the old one stops working")

    def handle(self, *args: object, username: str, regenerate: bool, **options: object) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"There is no user {username!r}. Create it first (manage.py createsuperuser, or the admin).") from None
        token = regenerate_token(user=user) if regenerate else token_for(user=user)
        self.stdout.write(f"API token for {username}: {token.key}")
