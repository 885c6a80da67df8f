from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chat.services.accounts import ensure_admin


class Command(BaseCommand):
    help = "First-run set-up: an admin account to log in with (its password is printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/accounts/login/", help="login URL to print")

    def handle(self, *args: object, url: str, **options: object) -> None:
        self.stdout.write(ensure_admin(data_dir=settings.DATA_DIR, login_url=url))
