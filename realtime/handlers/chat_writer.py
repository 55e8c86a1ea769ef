"""What chat needs per process besides its handlers: batched message writes and the filter.

``MessageWriter`` is a group commit: messages that arrive while a batch is being written are
written together in the next one, in one transaction, so a busy zone costs one ORM hop per
batch rather than per message, and an idle server adds no delay. A message is only broadcast
after ``store`` returned its id, i.e. after its batch committed.

The profanity filter is built from the database word list once per process and rebuilt when a
moderator changes the list (``profanity.reload`` reaches every process through the bus).
"""

from __future__ import annotations

import asyncio
import logging

from chat.rules import ProfanityFilter
from chat.services import NewMessage, chat_messages_store, profanity_words
from realtime.core.db import db
from realtime.core.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

MAX_BATCH = 200


class MessageWriter:
    def __init__(self) -> None:
        self._pending: list[tuple[NewMessage, asyncio.Future[int]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def store(self, message: NewMessage) -> int:
        """Store ``message``; returns its id once its batch has committed (raises if it failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((message, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                ids = await db(chat_messages_store, messages=[m for m, _ in batch])
            except Exception as exc:
                if not isinstance(exc, ServiceUnavailable):  # an outage is reported once
                    logger.exception("storing %d chat messages failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            for (_, future), message_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(message_id)

    async def flushed(self) -> None:
        """Wait until every pending message is written (shutdown)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class ProfanityCache:
    """This process's filter, built from the database list on first use after a change."""

    def __init__(self) -> None:
        self._filter: ProfanityFilter | None = None

    async def get(self) -> ProfanityFilter:
        current = self._filter
        if current is None:
            current = ProfanityFilter(await db(profanity_words))
            self._filter = current
        return current

    def reload(self, message: object) -> None:
        """The word list changed (a ``profanity.reload`` process message): rebuild on next use."""
        self._filter = None
        logger.info("profanity word list changed; the filter is rebuilt on next use")
