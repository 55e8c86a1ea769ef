"""``manage.py notify EVENT USER_ID [USER_ID ...] [--data JSON]``: an event to users."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.management.commands._reach import require_redis
from realtime.ops.moderation import ModerationError, notify_users


class Command(BaseCommand):
    help = "Send EVENT (domain:name, not reserved) with --data to every connection of the users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event")
        parser.add_argument("user_ids", nargs="+", type=int)
        parser.add_argument("--data", default="{}", help="JSON object (default {})")

    def handle(self, *args: Any, **options: Any) -> None:
        require_redis()
        try:
            data = json.loads(options["data"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--data is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise CommandError("--data must be a JSON object")
        try:
            count = notify_users(user_ids=options["user_ids"], event=options["event"], data=data)
        except ModerationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Sent {options['event']} to {count} user(s)."))
