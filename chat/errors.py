"""Refusals of the chat rules and services, with the contract's codes (PROTOCOL.md §5.3).

Pure (no Django), so that ``chat.rules`` can raise them.
"""

from __future__ import annotations

from domain.errors import DomainError


class ChatError(DomainError):
    pass


class InvalidMessage(ChatError):
    code = "INVALID_MESSAGE"


class ContentBlocked(ChatError):
    code = "CONTENT_BLOCKED"


class NotInGuild(ChatError):
    code = "NOT_IN_GUILD"


class Muted(ChatError):
    code = "MUTED"


class UserNotFound(ChatError):
    code = "USER_NOT_FOUND"
