"""Chat events (PROTOCOL.md §5.3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from realtime.protocol.outbound.common import IdStr, Ms, Out, omitted

Channel = Literal["zone", "global", "guild"]


class ChatMessage(Out):
    """A channel message (or, in whisper history, a whisper with `toUserId`)."""

    id: IdStr
    userId: IdStr
    characterId: IdStr | None
    characterName: str
    channel: Literal["zone", "global", "guild", "whisper"]
    message: str = Field(description="After hygiene and the profanity filter.")
    serverTimestamp: Ms
    toUserId: IdStr | None = omitted("Whispers only.")


class ChatMessageSent(Out):
    id: IdStr
    channel: Channel
    serverTimestamp: Ms


class WhisperReceived(Out):
    id: IdStr
    fromUserId: IdStr
    fromCharacterId: IdStr | None
    fromName: str
    toUserId: IdStr
    message: str
    serverTimestamp: Ms


class WhisperSent(Out):
    id: IdStr
    targetUserId: IdStr
    message: str
    serverTimestamp: Ms


class Emote(Out):
    characterId: IdStr
    userId: IdStr
    characterName: str
    emote: Literal["smile", "wave", "bow", "dance", "cheer", "laugh", "cry", "point"]
    target: str | None
    serverTimestamp: Ms


class History(Out):
    channel: Literal["zone", "global", "guild", "whisper"]
    messages: list[ChatMessage] = Field(description="Oldest first.")
    nextCursor: str | None = Field(description="`before` of the next (older) page; null: none.")


class TypingStatus(Out):
    characterId: IdStr | None
    userId: IdStr
    channel: Channel
    typing: bool
    timestamp: Ms


class UserRef(Out):
    userId: IdStr


class Blocklist(Out):
    userIds: list[IdStr]


class MessageDeleted(Out):
    id: IdStr
    channel: Literal["zone", "global", "guild", "whisper"]
