"""``manage.py realtime_stats``: connections, users and rooms summed over every live process."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from realtime.management.commands._reach import require_redis
from realtime.ops.stats import gather_stats


class Command(BaseCommand):
    help = "Print the realtime stats (the same as GET /api/realtime/stats) as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        require_redis()
        self.stdout.write(json.dumps(gather_stats(), indent=2))
