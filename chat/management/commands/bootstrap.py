from django.conf import settings
from django.core.management.base import BaseCommand

from chat.bootstrap import startup


class Command(BaseCommand):
    help = "First-run set-up and crash recovery: admin account, interrupted turns."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/accounts/login/", help="login URL to print")

    def handle(self, *args, url: str, **options):
        self.stdout.write(startup(data_dir=settings.DATA_DIR, login_url=url))
