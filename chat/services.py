"""Write-side of chat: store messages, blocks, mutes, moderation. Services never send anything.

Messages are stored in batches (``chat_messages_store``) so that a busy zone shares one
statement per batch instead of one transaction per message; each message is committed before
anything about it is broadcast.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from characters.models import Character
from characters.selectors import column
from chat.errors import ChatError, UserNotFound
from chat.models import Block, Channel, ChatMessage, Mute, ProfanityWord, whisper_pair


@dataclass(frozen=True, slots=True)
class NewMessage:
    channel: str
    sender_id: int
    character_id: int | None
    sender_name: str
    text: str
    filtered: bool
    sent_ms: int
    zone_id: int | None = None
    guild_id: int | None = None
    recipient_id: int | None = None
    # What the sender typed before masking (moderators only); "" when it equals ``text``.
    original: str = ""

    def stored(self, message_id: int) -> StoredMessage:
        """This message as it was stored under ``message_id`` (zone key not looked up)."""
        return StoredMessage(
            id=message_id,
            channel=self.channel,
            sender_id=self.sender_id,
            character_id=self.character_id,
            sender_name=self.sender_name,
            text=self.text,
            sent_ms=self.sent_ms,
            zone_key=None,
            guild_id=self.guild_id,
            recipient_id=self.recipient_id,
        )


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    channel: str
    sender_id: int
    character_id: int | None
    sender_name: str
    text: str
    sent_ms: int
    zone_key: str | None
    guild_id: int | None
    recipient_id: int | None


def _stored(message: ChatMessage, zone_key: str | None) -> StoredMessage:
    return StoredMessage(
        id=message.pk,
        channel=message.channel,
        sender_id=message.sender_id,
        character_id=message.sender_character_id,
        sender_name=message.sender_name,
        text=message.text,
        sent_ms=message.sent_ms,
        zone_key=zone_key,
        guild_id=message.guild_id,
        recipient_id=message.recipient_id,
    )


@transaction.atomic
def chat_messages_store(*, messages: Sequence[NewMessage]) -> list[int]:
    """Store ``messages`` in one statement, in a transaction; their ids, in order.

    The transaction is what makes a refused message stay refused: when the database stalls,
    ``realtime.core.db`` gives up on the call and shuts its connection, and a COMMIT that never
    arrives is what guarantees the INSERT is not applied later (a lone autocommitted statement
    delivered late would be; the fault suite caught exactly that)."""
    if not messages:
        return []
    values = [
        value
        for m in messages
        for value in (
            m.channel,
            m.zone_id,
            m.guild_id,
            m.sender_id,
            m.character_id,
            m.sender_name,
            m.recipient_id,
            whisper_pair(m.sender_id, m.recipient_id) if m.recipient_id else "",
            m.text,
            m.filtered,
            m.original if m.original != m.text else "",
            m.sent_ms,
        )
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(connection.vendor, len(messages)), values)
        return [row[0] for row in cursor.fetchall()]


_STORED_FIELDS = (
    "channel", "zone", "guild", "sender", "sender_character", "sender_name", "recipient", "pair",
    "text", "filtered", "original_text", "sent_ms",
)  # fmt: skip


@functools.cache
def _insert_statement(vendor: str, rows: int) -> str:
    """``rows`` messages, returning their ids in order (PostgreSQL, and SQLite >= 3.35, as
    Django's ``bulk_create``). Written by hand, names from the model: a message is stored
    before it is broadcast, and the ORM's ``bulk_create`` cost ~0.34 ms of CPU for one
    message and ~0.62 ms for three, this ~0.2 ms for either, both in their transaction
    (bench/README.md)."""
    meta = ChatMessage._meta
    columns = ", ".join(column(meta, name) for name in _STORED_FIELDS)
    row = "(" + ", ".join(["%s"] * len(_STORED_FIELDS)) + ")"
    qn = connection.ops.quote_name
    return (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}"  # noqa: S608 (names from the model; values are parameters)
        f" RETURNING {qn(meta.pk.column)}"
    )


# --- history --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    user_id: int
    channel: str
    zone_id: int | None = None
    guild_id: int | None = None
    with_user_id: int | None = None
    before: tuple[int, int] | None = None  # (sent_ms, id), exclusive
    limit: int = 50
    blocked: frozenset[int] = frozenset()


def chat_message_withdraw(message_id: int) -> None:
    """Remove a stored message that could not be delivered (the client was told it failed):
    it must not appear in history later (PROTOCOL.md §8a: never applied behind the client's
    back)."""
    ChatMessage.objects.filter(pk=message_id).delete()


def chat_history(query: HistoryQuery) -> tuple[list[StoredMessage], tuple[int, int] | None]:
    """One page of history, oldest first, and the cursor of the next (older) page or None.

    Pages are cut on ``(sent_ms, id)``, a strict total order, so paging never skips or repeats
    a message even when many share a millisecond. Deleted messages and messages from users
    ``blocked`` are left out.
    """
    qs = ChatMessage.objects.filter(channel=query.channel, deleted_at__isnull=True)
    if query.channel == Channel.ZONE:
        qs = qs.filter(zone_id=query.zone_id or 0)
    elif query.channel == Channel.GUILD:
        qs = qs.filter(guild_id=query.guild_id or 0)
    elif query.channel == Channel.WHISPER:
        if query.with_user_id is not None:
            qs = qs.filter(pair=whisper_pair(query.user_id, query.with_user_id))
        else:
            qs = qs.filter(Q(sender_id=query.user_id) | Q(recipient_id=query.user_id))
    if query.blocked:
        qs = qs.exclude(sender_id__in=query.blocked)
    if query.before is not None:
        ms, message_id = query.before
        qs = qs.filter(Q(sent_ms__lt=ms) | Q(sent_ms=ms, id__lt=message_id))
    rows = list(qs.select_related("zone").order_by("-sent_ms", "-id")[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    page = [_stored(row, row.zone.key if row.zone else None) for row in reversed(rows)]
    next_cursor = (rows[-1].sent_ms, rows[-1].pk) if more and rows else None
    return page, next_cursor


# --- whispers, blocks, mutes ----------------------------------------------------------------


def user_exists(user_id: int) -> bool:
    return get_user_model().objects.filter(pk=user_id).exists()


def user_id_for_character_name(name: str) -> int | None:
    """The owner of the character called ``name`` (case-insensitive), if any."""
    row = Character.objects.filter(name__iexact=name.strip()).values_list("owner_id").first()
    return row[0] if row else None


def blocked_ids(owner_id: int) -> list[int]:
    return sorted(Block.objects.filter(owner_id=owner_id).values_list("blocked_id", flat=True))


def is_blocked_by(*, owner_id: int, user_id: int) -> bool:
    """Whether ``owner_id`` blocks ``user_id``."""
    return Block.objects.filter(owner_id=owner_id, blocked_id=user_id).exists()


def block_add(*, owner_id: int, blocked_id: int) -> list[int]:
    """Block ``blocked_id`` (idempotent); the owner's block list after the change."""
    if blocked_id == owner_id:
        raise ChatError("You cannot block yourself")
    if not user_exists(blocked_id):
        raise UserNotFound(f"User {blocked_id} does not exist")
    try:
        with transaction.atomic():
            Block.objects.get_or_create(owner_id=owner_id, blocked_id=blocked_id)
    except IntegrityError:  # a concurrent block of the same user won the race
        pass
    return blocked_ids(owner_id)


def block_remove(*, owner_id: int, blocked_id: int) -> list[int]:
    if not user_exists(blocked_id):
        raise UserNotFound(f"User {blocked_id} does not exist")
    with transaction.atomic():  # never applied later if the database stalls (realtime.core.db)
        Block.objects.filter(owner_id=owner_id, blocked_id=blocked_id).delete()
    return blocked_ids(owner_id)


def mute_until(user_id: int) -> datetime | None:
    """The end of the user's longest running mute, or None."""
    mute = Mute.objects.filter(user_id=user_id, until__gt=timezone.now()).order_by("-until")
    row = mute.values_list("until", flat=True).first()
    return row


def mute_set(*, user_id: int, minutes: float, reason: str, by_id: int | None) -> Mute:
    if not user_exists(user_id):
        raise UserNotFound(f"User {user_id} does not exist")
    until = timezone.now() + timedelta(minutes=minutes)
    return Mute.objects.create(user_id=user_id, until=until, reason=reason, created_by_id=by_id)


def message_delete(*, message_id: int, by_id: int | None) -> StoredMessage | None:
    """Soft-delete a message (moderation); None when it does not exist or was deleted."""
    with transaction.atomic():
        row = (
            ChatMessage.objects.select_for_update(of=("self",))
            .select_related("zone")
            .filter(pk=message_id, deleted_at__isnull=True)
            .first()
        )
        if row is None:
            return None
        row.deleted_at = timezone.now()
        row.deleted_by_id = by_id
        row.save(update_fields=["deleted_at", "deleted_by"])
        return _stored(row, row.zone.key if row.zone else None)


def profanity_words() -> list[str]:
    return list(ProfanityWord.objects.values_list("word", flat=True))
