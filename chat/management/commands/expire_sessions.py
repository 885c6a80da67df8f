from __future__ import annotations

import argparse
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from chat.models import Session
from chat.services.archive import ExpireReport, expire_sessions


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


def _label(session: Session) -> str:
    idle = timezone.now() - session.last_activity_at
    return f"{session.id} “{session.display_title}” of {session.owner.get_username()}, idle {idle.days} d {idle.seconds // 3600} h"


def _kept(report: ExpireReport) -> str:
    return f", kept {len(report.kept)} of tasks not yet merged or discarded" if report.kept else ""


class Command(BaseCommand):
    help = ("Archive chats idle for longer than --older-than hours: their Claude Code transcript is "
            "gzipped into CLAUDE_ARCHIVE_DIR, their messages stay readable. Exits with status 1 if any "
            "chat could not be archived (it is left unchanged).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=hours, default=24.0, metavar="HOURS",
                            help="archive chats with no activity for this many hours (default 24; decimals allowed)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be archived and change nothing")

    def handle(self, *args: object, older_than: float, dry_run: bool, verbosity: int = 1, **options: object) -> None:
        report = expire_sessions(older_than=timedelta(hours=older_than), dry_run=dry_run)
        self._print(report, verbose=verbosity >= 1)
        if report.failed:
            raise CommandError(f"{len(report.failed)} chat(s) could not be archived and were left unchanged; "
                               "fix the cause shown above and run the command again.")

    def _print(self, report: ExpireReport, *, verbose: bool) -> None:
        for session, size in report.would_archive:
            self.stdout.write(f"Would archive {_label(session)} ({_size(size)})")
        for session, result in report.archived:
            if verbose:
                where = f" → {result.archive_path} ({_size(result.size)})" if result.archive_path else " (no transcript)"
                self.stdout.write(f"Archived {_label(session)}{where}")
        for session, reason in report.skipped:
            if verbose:
                self.stdout.write(f"Skipped {_label(session)}: {reason}")
        for session, reason in report.kept:
            if verbose:
                self.stdout.write(f"Kept {_label(session)}: {reason}")
        for session, error in report.failed:
            self.stderr.write(f"Could not archive {_label(session)}: {error}")
        if report.dry_run:
            self.stdout.write(f"Dry run: {len(report.would_archive)} chat(s) would be archived, "
                              f"{len(report.skipped)} skipped as busy{_kept(report)}; nothing was changed.")
        elif verbose or report.failed:
            self.stdout.write(f"Archived {len(report.archived)} chat(s), skipped {len(report.skipped)} busy"
                              f"{_kept(report)}, {len(report.failed)} failed.")
