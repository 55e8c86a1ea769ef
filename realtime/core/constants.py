"""Named constants of the wire contract (PROTOCOL.md §3, §4, §7)."""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    UNAUTHENTICATED = 4001
    FORBIDDEN = 4003
    SLOW_CONSUMER = 4008
    RATE_LIMITED = 4029


class CloseReason:
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    USER_BANNED = "USER_BANNED"
    KICKED = "KICKED"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    SERVER_RESTART = "SERVER_RESTART"
    MESSAGE_TOO_BIG = "MESSAGE_TOO_BIG"
    SUSPICIOUS_MOVEMENT = "SUSPICIOUS_MOVEMENT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    SEND_FAILED = "SEND_FAILED"
    # Socket.IO ends without a close code of their own (the reason is the session's only).
    CLIENT_DISCONNECT = "CLIENT_DISCONNECT"
    PING_TIMEOUT = "PING_TIMEOUT"


# Room prefixes (wire names keep the colon: "zone:starting_village").
ROOM_USER = "user"
ROOM_CHARACTER = "character"
ROOM_ZONE = "zone"
ROOM_COMBAT = "combat"
ROOM_GUILD = "guild"
ROOM_GLOBAL_CHAT = "global:chat"
ROOM_GLOBAL_EVENTS = "global:events"

# Event names the server owns; operators may not send them through notify.
RESERVED_EVENTS = frozenset({"error", "connect_error"})
RESERVED_EVENT_PREFIXES = ("sync:", "auth:", "session:")

SUBPROTOCOL = "aeturnis.v1"
SUBPROTOCOL_BEARER_PREFIX = "bearer."

# The scope extension through which a server lets the application write frames to the socket
# directly (realtime.connection.outbound.RawSocket), and the key of a received message's
# arrival time (epoch seconds) that our server adapters add (realtime.transport).
RAW_SOCKET = "aeturnis.socket"
RX_KEY = "aeturnis.rx"
