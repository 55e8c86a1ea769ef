"""``manage.py announce "text" [--priority high]``: a system announcement to every client."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.announcements import Priority, announce_sync
from realtime.broadcast import reaches_other_processes


class Command(BaseCommand):
    help = "Send system:announcement to every connected client on every server process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("message", help="Text of the announcement (1-500 characters)")
        parser.add_argument(
            "--priority", choices=[p.value for p in Priority], default=Priority.MEDIUM.value
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not reaches_other_processes():
            raise CommandError(
                "REDIS_URL is not set: this command cannot reach a running server. In the "
                "embedded default use the Django admin or POST /api/realtime/announcement."
            )
        try:
            payload = announce_sync(options["message"], Priority(options["priority"]))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Announced ({payload['priority']}): {payload['message']}")
        )
