"""Who receives each server event, and what answers each client request.

``EVENTS`` lists every event the server sends by name, with its data model and its recipients:
``REPLY`` (the requesting connection, when its request had no ack id), ``DIRECT`` (one
connection, not through a room) or the room kinds it is published to (with `room`, `offset`).
``ANSWERS`` says, for every client event of the dispatch table, which reply event answers it
(or none), the data its ack carries and the error codes its handler may refuse it with.
A test keeps ``ANSWERS`` and ``realtime.handlers.dispatch.ROUTES`` equal; the consumer tests
check every frame they receive against the document built from both.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from realtime.core.errors import ErrorCode as E
from realtime.protocol.outbound import chat, combat, system, world
from realtime.protocol.outbound.common import CombatState, ConnectError, Empty, ErrorBody

REPLY = "reply"
DIRECT = "direct"
# Room kinds (PROTOCOL.md §4); a room event goes to rooms of these kinds.
USER, CHARACTER, ZONE, COMBAT, GUILD = "user", "character", "zone", "combat", "guild"
GLOBAL_CHAT, GLOBAL_EVENTS = "global:chat", "global:events"
CHAT_ROOMS = (ZONE, GLOBAL_CHAT, GUILD)


@dataclass(frozen=True, slots=True)
class Event:
    """A server → client event: its data model, recipients and a one-line summary."""

    model: type[BaseModel]
    to: tuple[str, ...]
    summary: str

    @property
    def room_event(self) -> bool:
        return self.to not in ((REPLY,), (DIRECT,))


EVENTS: dict[str, Event] = {
    # connection and system (§2, §5.1, §8)
    "sync:initial": Event(system.SyncInitial, (DIRECT,), "First event after a successful connect"),
    "connect_error": Event(ConnectError, (DIRECT,), "The handshake was refused; a close follows"),
    "error": Event(ErrorBody, (DIRECT,), "A frame that could not be routed, or was refused"),
    "pong": Event(system.Pong, (REPLY,), "Answer to `ping`"),
    "auth:refreshed": Event(system.AuthRefreshed, (REPLY,), "The new token was accepted"),
    "auth:expired": Event(system.AuthExpired, (DIRECT,), "Token expired or revoked; close 4001"),
    "sync:resumed": Event(system.SyncResumed, (REPLY,), "Missed room events were replayed"),
    "system:announcement": Event(
        system.SystemAnnouncement, (GLOBAL_EVENTS,), "An operator's announcement"
    ),
    "system:shutdown": Event(system.SystemShutdown, (DIRECT,), "Server restarting; close 1012"),
    "session:kicked": Event(system.SessionKicked, (DIRECT,), "Kicked or banned; close 4003"),
    # characters and zones (§5.2)
    "character:selected": Event(world.CharacterSelected, (REPLY,), "The character is played"),
    "character:online": Event(world.CharacterOnline, (ZONE,), "A character was selected"),
    "character:moved": Event(world.CharacterMoved, (ZONE,), "A character moved"),
    "character:zone_changed": Event(world.ZoneChanged, (REPLY,), "You are in the new zone"),
    "zone:character_left": Event(world.ZoneCharacterLeft, (ZONE,), "A character left the zone"),
    "zone:character_entered": Event(
        world.ZoneCharacterEntered, (ZONE,), "A character entered the zone"
    ),
    "character:action_result": Event(
        world.CharacterActionResult, (REPLY,), "Your action was performed"
    ),
    "character:action_broadcast": Event(
        world.CharacterActionBroadcast, (ZONE,), "A character performed an action"
    ),
    "character:status_changed": Event(
        world.CharacterStatusChanged, (ZONE,), "A character's status changed"
    ),
    "character:offline": Event(
        world.CharacterOffline, (ZONE,), "A character's last connection is gone"
    ),
    # presence (§5.5)
    "presence:state": Event(world.PresenceState, (REPLY,), "Presence of the users asked for"),
    "presence:zone": Event(world.PresenceZone, (REPLY,), "Who is in your zone"),
    "presence:changed": Event(world.PresenceChanged, (GUILD,), "A guild member's status changed"),
    # chat (§5.3)
    "chat:message": Event(chat.ChatMessage, CHAT_ROOMS, "A channel message"),
    "chat:message_sent": Event(chat.ChatMessageSent, (REPLY,), "Your message was stored and sent"),
    "chat:whisper_received": Event(chat.WhisperReceived, (USER,), "A whisper to you"),
    "chat:whisper_sent": Event(chat.WhisperSent, (REPLY,), "Your whisper was stored and sent"),
    "chat:emote": Event(chat.Emote, (ZONE,), "An emote in your zone (the sender's included)"),
    "chat:history": Event(chat.History, (REPLY,), "One page of a channel's history"),
    "chat:typing_status": Event(chat.TypingStatus, CHAT_ROOMS, "Someone started or stopped typing"),
    "chat:blocked": Event(chat.UserRef, (REPLY,), "The user is blocked"),
    "chat:unblocked": Event(chat.UserRef, (REPLY,), "The user is no longer blocked"),
    "chat:blocklist": Event(chat.Blocklist, (REPLY,), "The users you block"),
    "chat:message_deleted": Event(
        chat.MessageDeleted, (*CHAT_ROOMS, USER), "A moderator deleted a message"
    ),
    # combat (§5.4): a new fight's first events go to the participants' character rooms
    "combat:start": Event(CombatState, (CHARACTER,), "A fight started"),
    "combat:action_result": Event(
        combat.CombatActionResult, (COMBAT, CHARACTER), "An action was played"
    ),
    "combat:turn": Event(combat.CombatTurn, (COMBAT, CHARACTER), "Whose turn it is now"),
    "combat:end": Event(combat.CombatEnd, (COMBAT, CHARACTER), "The fight is over"),
    "combat:player_fled": Event(combat.PlayerFled, (COMBAT, CHARACTER), "A player fled"),
    "combat:state": Event(CombatState, (REPLY,), "The fight's state"),
    "combat:flee_result": Event(combat.FleeResult, (REPLY,), "Whether you got away"),
    "combat:challenge_received": Event(
        combat.ChallengeReceived, (USER,), "Someone challenges your character"
    ),
    "combat:challenge_declined": Event(
        combat.ChallengeDeclined, (USER,), "Your challenge was declined"
    ),
}


@dataclass(frozen=True, slots=True)
class Answer:
    """How a client event is answered: its reply event (None: only an ack says it worked), the
    data of a successful ack besides ``ok`` (the reply event's, unless ``ack`` says otherwise),
    and the codes its handler may refuse it with (routing codes come on top)."""

    reply: str | None
    errors: tuple[E, ...] = ()
    ack: type[BaseModel] | None = None

    @property
    def ack_model(self) -> type[BaseModel]:
        if self.ack is not None:
            return self.ack
        return EVENTS[self.reply].model if self.reply is not None else Empty


_COMBAT = (E.NO_CHARACTER, E.SESSION_NOT_FOUND, E.NOT_IN_COMBAT)

ANSWERS: dict[str, Answer] = {
    "ping": Answer("pong"),
    "auth": Answer(None, (E.INVALID_REQUEST,)),
    "auth:refresh": Answer("auth:refreshed", (E.TOKEN_INVALID, E.TOKEN_EXPIRED, E.TOKEN_REVOKED)),
    "sync:resume": Answer("sync:resumed"),
    "character:select": Answer("character:selected", (E.CHARACTER_NOT_FOUND, E.ACCESS_DENIED)),
    "character:move": Answer(None, (E.NO_CHARACTER, E.INVALID_MOVEMENT, E.INVALID_MOVEMENT_SPEED)),
    "character:change_zone": Answer(
        "character:zone_changed",
        (E.NO_CHARACTER, E.ZONE_NOT_FOUND, E.ZONE_NOT_ADJACENT, E.IN_COMBAT),
    ),
    "character:action": Answer(
        "character:action_result", (E.NO_CHARACTER, E.INVALID_ACTION, E.ACTION_ON_COOLDOWN)
    ),
    "character:status_update": Answer(None, (E.NO_CHARACTER, E.INVALID_STATUS)),
    "presence:get": Answer("presence:state", (E.INVALID_REQUEST,)),
    "presence:zone": Answer("presence:zone", (E.NO_CHARACTER,)),
    "chat:message": Answer(
        "chat:message_sent",
        (E.INVALID_MESSAGE, E.CONTENT_BLOCKED, E.NO_CHARACTER, E.NOT_IN_GUILD, E.MUTED),
    ),
    "chat:whisper": Answer(
        "chat:whisper_sent",
        (
            E.INVALID_MESSAGE,
            E.CONTENT_BLOCKED,
            E.USER_NOT_FOUND,
            E.USER_OFFLINE,
            E.USER_BLOCKED,
            E.MUTED,
            E.INVALID_REQUEST,
        ),
    ),
    "chat:emote": Answer(None, (E.NO_CHARACTER, E.INVALID_EMOTE)),
    "chat:history": Answer("chat:history", (E.INVALID_REQUEST, E.NO_CHARACTER, E.NOT_IN_GUILD)),
    "chat:typing": Answer(None, (E.NO_CHARACTER, E.NOT_IN_GUILD)),
    "chat:block": Answer("chat:blocked", (E.USER_NOT_FOUND, E.INVALID_REQUEST)),
    "chat:unblock": Answer("chat:unblocked", (E.USER_NOT_FOUND,)),
    "chat:blocklist": Answer("chat:blocklist"),
    "combat:start": Answer(
        None,
        (E.NO_CHARACTER, E.ALREADY_IN_COMBAT, E.MONSTER_NOT_FOUND),
        combat.FightStarted,
    ),
    "combat:challenge": Answer(
        None,
        (E.NO_CHARACTER, E.TARGET_NOT_FOUND, E.TARGET_NOT_IN_ZONE, E.ALREADY_IN_COMBAT),
        combat.ChallengeMade,
    ),
    "combat:challenge_response": Answer(
        None,
        (E.NO_CHARACTER, E.CHALLENGE_NOT_FOUND, E.ALREADY_IN_COMBAT),
        combat.ChallengeAnswered,
    ),
    "combat:join": Answer("combat:state", _COMBAT),
    "combat:action": Answer(
        None,
        (*_COMBAT, E.NOT_YOUR_TURN, E.INVALID_TARGET, E.INVALID_ACTION),
        combat.ActionTaken,
    ),
    "combat:flee": Answer("combat:flee_result", (*_COMBAT, E.NOT_YOUR_TURN, E.INVALID_ACTION)),
    "combat:get_state": Answer("combat:state", _COMBAT),
}

# Refusals any routed request may get, besides its own codes: the dispatcher's (as `error`, or
# in the ack) and a handler that failed.
ROUTING_ERRORS = (E.INVALID_PAYLOAD, E.RATE_LIMITED, E.INTERNAL_ERROR)
# Frames that are not requests at all (`error`, or the ack when its id could be read).
FRAME_ERRORS = (E.BAD_FRAME, E.UNKNOWN_EVENT)
