"""``manage.py announce "text" [--priority high]``: a system announcement to every client."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.management.commands._reach import require_redis
from realtime.ops.announcements import Priority, announcement_send


class Command(BaseCommand):
    help = "Send system:announcement to every connected client on every server process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("message", help="Text of the announcement (1-500 characters)")
        parser.add_argument(
            "--priority", choices=[p.value for p in Priority], default=Priority.MEDIUM.value
        )

    def handle(self, *args: Any, **options: Any) -> None:
        require_redis()
        try:
            payload = announcement_send(
                options["message"], Priority(options["priority"]), sent_by_id=None
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Announced ({payload['priority']}): {payload['message']}")
        )
