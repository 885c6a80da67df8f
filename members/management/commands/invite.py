from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from members import services


class Command(BaseCommand):
    help = "Make an invite link: whoever opens it picks a name and a password and is a member. It works once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=services.INVITE_DAYS, help="how long it works (1 to 90)")
        parser.add_argument("--note", default="", help="for whom (only staff see it, in the admin)")
        parser.add_argument(
            "--email", default="", help="for whom, if they sign in with the identity provider: that email uses it"
        )
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the app's address, as members reach it")

    def handle(self, *args: object, days: int, note: str, email: str, url: str, **options: object) -> None:
        try:
            made = services.make_invite(created_by=None, days=days, note=note, email=email)
        except services.Refused as exc:
            raise CommandError(str(exc)) from None
        link = url.rstrip("/") + reverse("members:invite", args=[made.token])
        self.stdout.write(
            f"Invite link (works once, until {made.invite.expires_at:%Y-%m-%d %H:%M} UTC; shown only now):\n{link}"
        )
