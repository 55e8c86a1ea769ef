"""``manage.py kick USER_ID [--reason TEXT]``: close every connection of a user (4003)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.management.commands._reach import require_redis
from realtime.ops.moderation import ModerationError, kick_user


class Command(BaseCommand):
    help = "Send session:kicked and close 4003 on every connection of the user, on every process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user_id", type=int)
        parser.add_argument("--reason", default="Kicked by a moderator")

    def handle(self, *args: Any, **options: Any) -> None:
        require_redis()
        try:
            kick_user(user_id=options["user_id"], reason=options["reason"])
        except ModerationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(self.style.SUCCESS(f"Kicked user {options['user_id']}."))
