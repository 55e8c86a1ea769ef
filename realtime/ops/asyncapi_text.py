"""The prose and the request examples of the AsyncAPI document (``realtime.ops.asyncapi``)."""

from __future__ import annotations

from typing import Any

DESCRIPTION = """\
The real-time protocol of the Aeturnis online RPG: chat, movement, combat, presence and system
events between game clients and the server. The wire contract is PROTOCOL.md; the guide
`docs/PROTOCOL_GUIDE.md` explains connecting, rooms, acks, resume and errors with examples.

* **Frames** (`/ws/game/`): the client sends `{event, data, ack?}`. A request with an `ack` id
  (a positive integer) is answered by `{ack, data: {ok: true, ...}}` or
  `{ack, data: {ok: false, error: {code, message}}}` and no reply event; without one, by its
  reply event (if it has one) or its `<domain>:error` event.
* **Room events** carry `room`, a per-room strictly increasing `offset` and the room stream's
  `epoch`; `sync:resume` replays what a reconnecting client missed.
* **Errors**: frames that cannot be routed get `error` (`BAD_FRAME`, `UNKNOWN_EVENT`,
  `INVALID_PAYLOAD` with `fields`, `RATE_LIMITED` with `retryAfter`); each operation lists the
  codes it may be refused with in `x-error-codes`, and its limit (count/seconds per user) in
  `x-rate-limit`. `x-to` says who receives a server event: `reply` (the requesting connection),
  `direct` (one connection) or the kinds of room it is published to.
* **Generated** from the server's dispatch table and payload models: this document is what the
  server accepts and sends.
"""

SOCKETIO_DESCRIPTION = """\
The same events, payloads, rooms, limits and errors over Socket.IO v4 (Engine.IO protocol 4,
Socket.IO protocol 5; WebSocket transport, default namespace `/`). An event is
`42["chat:message",{...}]`, with an ack id `42<id>["chat:message",{...}]`, answered by
`43<id>[{ok, ...}]` carrying exactly what a native ack's `data` carries. Room events carry
`{room, offset, epoch}` as a second argument and, last, the connection state recovery offset (a
string: the event's bus-wide sequence number). The token comes in the CONNECT packet's `auth`
object (`io(url, {auth: {token}})`); a refusal is a CONNECT_ERROR `{message, data: {code}}`.
The CONNECT answer `{sid, pid}` carries the recovery id: a client that reconnects within the
recovery window with `{pid, offset}` in its `auth` (socket.io-client does so by itself) gets its
rooms, its character and the room events it missed back, before a CONNECT answer with the same
pid.
"""

# One valid request per client event (the tests check each against its route's model).
EXAMPLES: dict[str, Any] = {
    "ping": {"clientTime": 1767225600000},
    "auth": {"token": "<access JWT>"},
    "auth:refresh": {"token": "<newer access JWT>"},
    "sync:resume": {"rooms": {"zone:starting_village": 41, "global:chat": 7}},
    "character:select": {"characterId": "1"},
    "character:move": {"x": 12.5, "y": -3.0, "z": 0.0, "direction": 90.0},
    "character:change_zone": {"zone": "meadow_path"},
    "character:action": {"action": "attack", "targetId": "2"},
    "character:status_update": {"status": "lfg", "message": "Looking for a group"},
    "presence:get": {"userIds": ["2", "3"]},
    "presence:zone": {},
    "chat:message": {"channel": "zone", "message": "Hello, village!"},
    "chat:whisper": {"targetName": "Bob", "message": "Meet at the well?"},
    "chat:emote": {"emote": "wave", "target": "Bob"},
    "chat:history": {"channel": "zone", "limit": 20},
    "chat:typing": {"channel": "zone", "typing": True},
    "chat:block": {"userId": "4"},
    "chat:unblock": {"userId": "4"},
    "chat:blocklist": {},
    "combat:start": {"monster": "goblin"},
    "combat:challenge": {"characterId": "2"},
    "combat:challenge_response": {"challengeId": "9", "accept": True},
    "combat:join": {"sessionId": "17"},
    "combat:action": {"sessionId": "17", "actionType": "attack", "targetId": "m1"},
    "combat:flee": {"sessionId": "17"},
    "combat:get_state": {"sessionId": "17"},
}
