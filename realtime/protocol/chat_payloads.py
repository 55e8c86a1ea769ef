"""Inbound payload models of the chat events (PROTOCOL.md §5.3).

Channels are part of the shape (an unknown channel is ``INVALID_PAYLOAD``); message length,
emote names, history limits and cursors are rules, answered with ``chat:error``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import StrictBool, StrictInt, StrictStr, TypeAdapter, model_validator

from realtime.protocol.payloads import Payload
from realtime.protocol.world_payloads import WireId

MessageChannel = Literal["zone", "global", "guild"]


class ChatMessagePayload(Payload):
    channel: MessageChannel
    message: StrictStr


class ChatWhisperPayload(Payload):
    targetUserId: WireId | None = None
    targetName: StrictStr | None = None
    message: StrictStr

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.targetUserId is None) == (self.targetName is None):
            raise ValueError("give exactly one of targetUserId and targetName")
        return self


class ChatEmotePayload(Payload):
    emote: StrictStr
    target: StrictStr | None = None


class ChatHistoryPayload(Payload):
    channel: Literal["zone", "global", "guild", "whisper"]
    limit: StrictInt | None = None
    before: StrictStr | None = None
    withUserId: WireId | None = None


class ChatTypingPayload(Payload):
    channel: MessageChannel
    typing: StrictBool


class ChatUserPayload(Payload):
    userId: WireId


CHAT_MESSAGE = TypeAdapter(ChatMessagePayload)
CHAT_WHISPER = TypeAdapter(ChatWhisperPayload)
CHAT_EMOTE = TypeAdapter(ChatEmotePayload)
CHAT_HISTORY = TypeAdapter(ChatHistoryPayload)
CHAT_TYPING = TypeAdapter(ChatTypingPayload)
CHAT_USER = TypeAdapter(ChatUserPayload)
