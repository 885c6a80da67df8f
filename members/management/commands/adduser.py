from django.core.management.base import BaseCommand, CommandError, CommandParser

from members import services


class Command(BaseCommand):
    help = "Add a member: an account whose password is printed once, to hand over (they change it under Settings)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--staff", action="store_true", help="an admin: sees every chat and task, has the admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/accounts/login/", help="login URL to print")

    def handle(self, *args: object, username: str, staff: bool, url: str, **options: object) -> None:
        try:
            made = services.add_member(username=username, staff=staff)
        except services.Refused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Added {'the admin' if staff else 'the member'} {made.user.get_username()}. Log in at {url}\n"
            f"    username: {made.user.get_username()}\n    password: {made.password}\n"
            "This password is shown only now and stored nowhere: hand it over, and have it changed under "
            "Settings → Change your password."
        )
