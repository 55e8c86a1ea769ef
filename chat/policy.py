"""Chat policy of one request: who may say what, where (PROTOCOL.md §5.3).

Pure, like ``chat.rules`` (which it builds on): a refusal is raised as the ``chat.errors`` code
the contract gives it, which the realtime dispatcher answers as ``chat:error``.
"""

from __future__ import annotations

from chat.errors import ContentBlocked, InvalidMessage, Muted, NotInGuild
from chat.rules import FilterMode, ProfanityFilter, clean_text, message_problem


def checked_message(message: str) -> str:
    """The text to deliver: cleaned (``clean_text``); raises ``InvalidMessage`` when it is
    empty or too long afterwards."""
    text = clean_text(message)
    problem = message_problem(text)
    if problem is not None:
        raise InvalidMessage(problem)
    return text


def check_not_muted(*, muted_until_ms: int, now_ms: int) -> None:
    """Raises ``Muted`` (with ``until``) while a mute runs."""
    if muted_until_ms > now_ms:
        raise Muted("You are muted", until=muted_until_ms)


def check_guild_channel(guild_id: int | None) -> int:
    """The guild of a ``guild`` channel request; raises ``NotInGuild`` without one."""
    if guild_id is None:
        raise NotInGuild("Your character is not in a guild")
    return guild_id


def filtered(text: str, profanity: ProfanityFilter, mode: str) -> tuple[str, bool]:
    """Apply the profanity filter in ``mode``: the text to store and whether it was masked.

    Raises ``ContentBlocked`` in ``reject`` mode when the text contains a listed word.
    """
    if not profanity.contains(text):
        return text, False
    if mode == FilterMode.REJECT:
        raise ContentBlocked("The message contains blocked words")
    return profanity.mask(text), True
