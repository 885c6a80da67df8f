from __future__ import annotations

import argparse
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from chat.services.expiry import Expired, ExpireTotals, Outcome, expire_sessions


def hours(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hours (e.g. 24 or 0.5)") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"the number of hours must be 0 or more, not {value}")
    return number


def _size(n: int) -> str:
    return f"{n / 1024:,.1f} kB" if n else "no transcript"


def _label(chat: Expired) -> str:
    idle = timezone.now() - chat.last_activity_at
    return f"{chat.session_id} “{chat.title}” of {chat.owner}, idle {idle.days} d {idle.seconds // 3600} h"


def _kept(totals: ExpireTotals) -> str:
    return f", kept {totals.kept} of tasks not yet merged or discarded" if totals.kept else ""


class Command(BaseCommand):
    help = (
        "Archive chats idle for longer than --older-than hours: their Claude Code transcript is "
        "gzipped into CLAUDE_ARCHIVE_DIR, their messages stay readable. Exits with status 1 if any "
        "chat could not be archived (it is left unchanged)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=hours,
            default=24.0,
            metavar="HOURS",
            help="archive chats with no activity for this many hours (default 24; decimals allowed)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list what would be archived and change nothing")

    def handle(self, *args: object, older_than: float, dry_run: bool, verbosity: int = 1, **options: object) -> None:
        verbose = verbosity >= 1

        # Each chat is printed as it is done: a run over many chats shows progress and holds none of them.
        def report(chat: Expired) -> None:
            match chat.outcome:
                case Outcome.WOULD_ARCHIVE:
                    self.stdout.write(f"Would archive {_label(chat)} ({_size(chat.size)})")
                case Outcome.ARCHIVED if verbose:
                    where = f" → {chat.archive_path} ({_size(chat.size)})" if chat.archive_path else " (no transcript)"
                    self.stdout.write(f"Archived {_label(chat)}{where}")
                case Outcome.SKIPPED if verbose:
                    self.stdout.write(f"Skipped {_label(chat)}: {chat.reason}")
                case Outcome.KEPT if verbose:
                    self.stdout.write(f"Kept {_label(chat)}: {chat.reason}")
                case Outcome.FAILED:
                    self.stderr.write(f"Could not archive {_label(chat)}: {chat.reason}")

        totals = expire_sessions(older_than=timedelta(hours=older_than), dry_run=dry_run, report=report)
        if dry_run:
            self.stdout.write(
                f"Dry run: {totals.would_archive} chat(s) would be archived, "
                f"{totals.skipped} skipped as busy{_kept(totals)}; nothing was changed."
            )
        elif verbose or totals.failed:
            self.stdout.write(
                f"Archived {totals.archived} chat(s), skipped {totals.skipped} busy"
                f"{_kept(totals)}, {totals.failed} failed."
            )
        if totals.failed:
            raise CommandError(
                f"{totals.failed} chat(s) could not be archived and were left unchanged; "
                "fix the cause shown above and run the command again."
            )
