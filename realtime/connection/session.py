"""One client connection, whatever transport carries it.

The transport consumer turns frames into ``Inbound`` requests and hands them here; everything
after that (authentication state, rooms, replies, acks, closing with the contract's codes) is
shared by both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from realtime.auth.handshake import Account, authenticate, check_connect_allowed
from realtime.auth.sources import Scope, client_ip
from realtime.auth.tokens import TokenInfo
from realtime.connection.controls import CONTROL_ACTIONS
from realtime.connection.lanes import SlowLane
from realtime.connection.outbound import (
    AsgiOutbound,
    Outbound,
    RawSocket,
    Send,
    SocketOutbound,
    sent_nowhere,
)
from realtime.connection.polling import PollingOutbound
from realtime.core import logs, metrics
from realtime.core.clock import now_ms
from realtime.core.constants import RAW_SOCKET, CloseCode, CloseReason
from realtime.core.eager import settle, started
from realtime.core.errors import HANDSHAKE_MESSAGES, ErrorCode, ServiceUnavailable
from realtime.fanout import rooms as room_names
from realtime.fanout.history import StreamPosition
from realtime.protocol.base import Codec, Inbound, encode_data
from realtime.protocol.frames import Frame
from realtime.runtime.runtime import Runtime
from realtime.state.gate import GateReading
from realtime.state.playing import Playing
from realtime.state.recovery import RecoveryRecord

logger = logging.getLogger(__name__)

HANDSHAKE_CLOSE: dict[str, int] = {
    ErrorCode.AUTH_REQUIRED: CloseCode.UNAUTHENTICATED,
    ErrorCode.TOKEN_INVALID: CloseCode.UNAUTHENTICATED,
    ErrorCode.TOKEN_EXPIRED: CloseCode.UNAUTHENTICATED,
    ErrorCode.TOKEN_REVOKED: CloseCode.UNAUTHENTICATED,
    ErrorCode.USER_BANNED: CloseCode.FORBIDDEN,
    ErrorCode.AUTH_RATE_LIMITED: CloseCode.RATE_LIMITED,
    ErrorCode.CONNECTION_RATE_LIMITED: CloseCode.RATE_LIMITED,
    ErrorCode.SERVICE_UNAVAILABLE: CloseCode.TRY_AGAIN_LATER,
}

RECONNECT_EXPECTED = frozenset(
    {CloseCode.SERVICE_RESTART, CloseCode.SLOW_CONSUMER, CloseCode.TRY_AGAIN_LATER}
)
# Ends after which a Socket.IO client is not to recover its connection: the server ended it on
# purpose (token, kick, ban, limits), or the client left (Socket.IO DISCONNECT). A transport that
# went away, a restart, a slow consumer, a missed pong are recovered.
NOT_RECOVERED = frozenset({CloseCode.UNAUTHENTICATED, CloseCode.FORBIDDEN, CloseCode.RATE_LIMITED})


def recoverable_end(code: int | None, reason: str | None) -> bool:
    """Whether a connection that ended with ``code``/``reason`` may be recovered."""
    return code not in NOT_RECOVERED and reason != CloseReason.CLIENT_DISCONNECT


def forget_handshake(scope: Scope) -> None:
    """Empty the handshake's header and subprotocol lists once the connection is admitted.

    They are read only to admit it (origin, token, subprotocol, client IP: ``auth.sources``),
    and every copy of the scope (the server's, each middleware's) shares the same lists, which
    hold ~1.6 KB per connection, the token among them, for the life of the connection.
    """
    for key in ("headers", "subprotocols"):
        value = scope.get(key)
        if isinstance(value, list):
            value.clear()


class Session:
    """State and outbound side of one connection; implements the hub's ``Member``."""

    # One per connection, thousands per process: no per-instance ``__dict__``.
    __slots__ = (
        "__weakref__",
        "_asgi_send",
        "_expiry",
        "_floors",
        "_held",
        "_hold",
        "_hold_all",
        "_record_dirty",
        "_record_ended",
        "_record_writer",
        "_registered",
        "_since",
        "account",
        "away",
        "blocked_user_ids",
        "close_code",
        "close_reason",
        "closed",
        "codec",
        "codec_name",
        "connected_at",
        "ip",
        "lane",
        "last_activity",
        "muted_until_ms",
        "outbound",
        "playing",
        "recovery_pid",
        "rooms",
        "runtime",
        "scope",
        "socket_id",
        "token",
    )

    def __init__(self, *, scope: Scope, codec: Codec, send: Send, runtime: Runtime) -> None:
        self.socket_id = uuid.uuid4().hex
        self.scope = scope
        self.codec = codec
        self.codec_name = codec.name
        self.runtime = runtime
        self.ip = client_ip(scope)
        self._asgi_send = send
        self.outbound: Outbound = self._make_outbound(scope, send)
        self.account: Account | None = None
        self.token: TokenInfo | None = None
        self.rooms: set[str] = set()
        # Chat state of the account, loaded at connect and kept current by control messages
        # (PROTOCOL.md §5.3): users it blocks (their room events are dropped here) and the end
        # of a running mute (ms, 0 for none).
        self.blocked_user_ids: frozenset[int] = frozenset()
        self.muted_until_ms = 0
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.connected_at = time.time()
        self.last_activity = time.monotonic()
        self.away = False
        self.playing: Playing | None = None
        # Requests waiting on the database, handled in order away from the others.
        self.lane = SlowLane()
        self._expiry: asyncio.TimerHandle | None = None
        # Rooms whose live frames are held back (a replay is under way); ``_hold_all`` holds
        # every room, so that what goes out stays in bus order (the Socket.IO recovery offset).
        self._hold: set[str] | None = None
        self._hold_all = False
        self._held: list[tuple[str, int, str, Frame, int]] = []
        # Socket.IO connection state recovery: the pid that recovers this connection, and the
        # task writing its record after its rooms changed (realtime.state.recovery).
        self.recovery_pid: str | None = None
        self._record_dirty = False
        self._record_ended = False
        self._record_writer: asyncio.Task[None] | None = None
        # Per room, its position when this connection joined: a frame at or below it (in the
        # same epoch) was published before the join and was still in flight on the bus, so it
        # is not sent. A frame of another epoch is after the join by definition.
        self._floors: dict[str, StreamPosition] = {}
        # Per room, the floor a Socket.IO recovery of this connection starts from: where it
        # joined, where the connection it recovered had joined, or where a resume covered it.
        self._since: dict[str, StreamPosition] = {}
        self._registered = False

    # --- identity -----------------------------------------------------------------------

    @property
    def user_id(self) -> int:
        return self.account.user_id if self.account else 0

    @property
    def registered(self) -> bool:
        """Opened (``open``) and not finished yet."""
        return self._registered

    @property
    def authenticated(self) -> bool:
        return self.account is not None and not self.closed

    async def touch(self) -> None:
        """A client event (not a ping) arrived: the connection is active."""
        self.last_activity = time.monotonic()
        if self.away and self._registered:
            self.away = False
            await self.runtime.presence.wake(self)

    # --- outbound -----------------------------------------------------------------------

    def _make_outbound(self, scope: Scope, send: Send) -> Outbound:
        """Straight to the socket when the server offers it (``RAW_SOCKET``), else ASGI."""
        raw: RawSocket | None = (scope.get("extensions") or {}).get(RAW_SOCKET)
        if raw is not None:
            return SocketOutbound(
                raw,
                limit_bytes=settings.AETURNIS_OUTBOUND_BUFFER_BYTES,
                on_overflow=self._overflowed,
                on_error=self._send_failed,
            )
        return AsgiOutbound(
            send,
            limit=settings.AETURNIS_OUTBOUND_QUEUE_SIZE,
            limit_bytes=settings.AETURNIS_OUTBOUND_BUFFER_BYTES,
            on_overflow=self._overflowed,
            on_error=self._send_failed,
        )

    def use_polling(self) -> PollingOutbound:
        """Hold frames for HTTP long-polling from now on (Engine.IO's first transport)."""
        outbound = PollingOutbound(
            limit_bytes=settings.AETURNIS_OUTBOUND_BUFFER_BYTES, on_overflow=self._overflowed
        )
        self.outbound = outbound
        return outbound

    def use_socket(self, scope: Scope, send: Send, pending: Iterable[Frame] = ()) -> None:
        """Send over this WebSocket from now on (Engine.IO's upgrade), ``pending`` (what the
        previous outbound still held) first, in order. Rooms, acks and the bound carry on."""
        self._asgi_send = send
        self.outbound = self._make_outbound(scope, send)
        for frame in pending:
            self.outbound.push(frame)

    def send_text(self, text: str) -> None:
        self.outbound.push(Frame(text))

    def send_event(self, event: str, data: Any) -> None:
        metrics.OUT_EVENT.inc()
        self.send_text(self.codec.event_frame(event, encode_data(data)))

    def send_ack(self, ack: int, data: dict[str, Any]) -> None:
        metrics.OUT_ACK.inc()
        self.send_text(self.codec.ack_frame(ack, encode_data(data)))

    def reply(self, inbound: Inbound, event: str | None, data: dict[str, Any] | None) -> None:
        """Answer a request: in its ack when it has one, else as ``event`` (if any)."""
        if inbound.ack is not None:
            self.send_ack(inbound.ack, {"ok": True, **(data or {})})
        elif event is not None:
            self.send_event(event, data or {})

    def reply_error(self, inbound: Inbound | None, error_event: str, body: dict[str, Any]) -> None:
        """Refuse a request: in its ack when it has one, else as ``error_event``."""
        metrics.count_error(str(body.get("code", "")))
        if inbound is not None and inbound.ack is not None:
            self.send_ack(inbound.ack, {"ok": False, "error": body})
            return
        if inbound is not None and error_event != "error":
            body = {**body, "event": inbound.event}
        self.send_event(error_event, body)

    def close(
        self, code: int, reason: str, *, drop_queued: bool = False, farewell: bool = True
    ) -> None:
        """Close with ``code``/``reason`` after what was sent before (unless ``drop_queued``).

        ``farewell`` lets the transport say goodbye first (Socket.IO's DISCONNECT packet), except
        for closes after which clients should reconnect on their own (restart, too slow): a
        Socket.IO client that gets DISCONNECT does not reconnect.
        """
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.close_reason = reason
        self._cancel_expiry()
        if not recoverable_end(code, reason):
            # At once, not when the socket is gone: the client may be reconnecting already.
            self._end_record_soon(recoverable=False)
        if farewell and code not in RECONNECT_EXPECTED:
            for frame in self.codec.farewell_frames():
                self.send_text(frame)
        self.outbound.close(int(code), reason, drop_queued=drop_queued)

    def _overflowed(self) -> None:
        """The client fell too far behind: drop what it has not taken, close 4008."""
        if self.close_code == CloseCode.SLOW_CONSUMER:
            return
        logger.warning(
            "closing slow consumer %s (user %s): over %d bytes behind",
            self.socket_id,
            self.user_id,
            settings.AETURNIS_OUTBOUND_BUFFER_BYTES,
        )
        metrics.SLOW_CONSUMER_CLOSES.inc()
        self.closed = True
        self.close_code = CloseCode.SLOW_CONSUMER
        self.close_reason = CloseReason.SLOW_CONSUMER
        self._cancel_expiry()
        self.outbound.close(
            int(CloseCode.SLOW_CONSUMER), CloseReason.SLOW_CONSUMER, drop_queued=True
        )

    def _send_failed(self, exc: BaseException) -> None:
        """A send failed (the server refused the frame, or the socket broke): nothing more can
        be delivered in order, so the socket is closed rather than left half alive."""
        if self.close_code == CloseCode.INTERNAL_ERROR:
            return
        logger.warning(
            "send to %s failed (%s: %s); closing it", self.socket_id, type(exc).__name__, exc
        )
        metrics.SEND_FAILURES.inc()
        self.closed = True
        self.close_code = CloseCode.INTERNAL_ERROR
        self.close_reason = CloseReason.SEND_FAILED
        self._cancel_expiry()
        asyncio.get_running_loop().create_task(self._close_after_failure())

    async def _close_after_failure(self) -> None:
        message = {
            "type": "websocket.close",
            "code": int(CloseCode.INTERNAL_ERROR),
            "reason": CloseReason.SEND_FAILED,
        }
        try:
            await self._asgi_send(message)
        except Exception:  # the socket is already gone: its disconnect will follow
            logger.debug("close after a failed send to %s failed too", self.socket_id)

    async def flushed(self, limit_s: float) -> bool:
        """Wait until what was sent has left, at most ``limit_s`` seconds (shutdown)."""
        return await self.outbound.flushed(limit_s)

    # --- the hub's Member interface -----------------------------------------------------

    def room_frame(self, room: str, offset: int, epoch: str, frame: Frame, sender: int) -> None:
        if sender and sender in self.blocked_user_ids:
            return
        floor = self._floors.get(room)
        if floor is not None:
            if floor.epoch != epoch:
                del self._floors[room]
            elif offset <= floor.offset:
                return
        if self._hold is not None and (self._hold_all or room in self._hold):
            self._held.append((room, offset, epoch, frame, sender))
            return
        self.outbound.push(frame)

    def room_control(self, room: str, message: dict[str, Any]) -> None:
        action = message.get("action")
        handler = CONTROL_ACTIONS.get(str(action))
        if handler is None:
            logger.warning("unknown control action %r", action)
            return
        handler(self, message)

    # --- handshake ----------------------------------------------------------------------

    async def check_connect(self) -> GateReading:
        """The per-IP gate; what it read goes to ``admit`` when the token is already known."""
        return await check_connect_allowed(self.ip, self.runtime.limiter)

    async def admit(self, raw_token: str | None, gate: GateReading | None = None) -> None:
        """Authenticate; raises ``AuthError`` (the caller refuses with its code). ``gate``:
        ``check_connect``'s reading, when this follows it at once."""
        self.token, self.account = await authenticate(
            self.ip, raw_token, self.runtime.limiter, gate
        )
        forget_handshake(self.scope)

    def refuse_frames(self, code: str) -> tuple[str, int]:
        """The message and close code for a refused handshake."""
        metrics.count_error(code)
        return HANDSHAKE_MESSAGES[code], HANDSHAKE_CLOSE[code]

    async def open(self, rooms: Iterable[str] = ()) -> dict[str, StreamPosition]:
        """Register the authenticated session, join the account's rooms (and ``rooms``: those
        a recovered connection was in), start its token timer and presence; returns the offsets
        of the joined rooms (for ``sync:initial``)."""
        assert self.account is not None and self.token is not None
        self.runtime.hub.register(self)
        self._registered = True
        self.runtime.connections_changed()
        logs.bind(user_id=self.user_id)
        metrics.CONNECTIONS.labels(self.codec_name).inc()
        self.schedule_expiry(self.token)
        # The rooms' positions and the presence entry: two scripts that leave together
        # (realtime.core.eager), run by Redis in this order.
        joining = started(
            self.join_many([room_names.user_room(self.user_id), *room_names.GLOBAL_ROOMS, *rooms])
        )
        announcing = started(self.runtime.presence.connected(self))
        offsets, _ = await settle(joining, announcing)
        return offsets  # type: ignore[no-any-return]

    def send_initial(self, offsets: dict[str, StreamPosition], state: dict[str, Any]) -> None:
        """``sync:initial``, the first event after a successful connect (PROTOCOL.md §5.1);
        ``state`` holds ``character`` and ``combat`` (None when there is none)."""
        self.send_event(
            "sync:initial",
            {
                "userId": str(self.user_id),
                "socketId": self.socket_id,
                "serverTime": now_ms(),
                "version": settings.AETURNIS_VERSION,
                "rooms": sorted(self.rooms),
                "offsets": {room: position.wire() for room, position in offsets.items()},
                "presence": {"status": "online"},
                "character": state.get("character"),
                "combat": state.get("combat"),
            },
        )

    async def finish(self) -> None:
        """The socket is gone: presence, position, every room (idempotent)."""
        self.closed = True
        self._cancel_expiry()
        self.outbound.kill()
        # The consumer's send, a bound method: the consumer holds this session, so keeping it
        # would leave the two in a cycle for the collector (bench/README.md).
        self._asgi_send = sent_nowhere
        self.lane.close()
        if not self._registered:
            return
        self._registered = False
        metrics.CONNECTIONS.labels(self.codec_name).dec()
        ending = self.recovery_pid is not None and not self._record_ended
        record = self.recovery_record() if ending else None
        self._record_ended = True
        # At graceful shutdown every position, presence entry and recovery record is written
        # in batches (Runtime.before_exit): thousands of sockets closing must not each do it.
        shutting_down = self.runtime.shutting_down
        if not shutting_down:
            await self._end_presence()
        rooms, self.rooms = self.rooms, set()
        await self.runtime.drop(self, rooms)
        self.runtime.connections_changed()
        if record is not None and not shutting_down:
            await self._end_record(
                record, recoverable=recoverable_end(self.close_code, self.close_reason)
            )

    async def _end_presence(self) -> None:
        # The presence entry and the live position are independent: their scripts leave
        # together (realtime.core.eager).
        steps = [started(self.runtime.presence.disconnected(self))]
        if self.playing is not None:
            steps.append(started(self.runtime.positions.flush_character(self.playing.character_id)))
        try:
            await settle(*steps)
        except ServiceUnavailable:
            # The position stays dirty in the live store; the write-behind takes it later.
            pass
        except Exception:
            logger.exception("ending presence of %s failed", self.socket_id)

    # --- rooms --------------------------------------------------------------------------

    async def join(self, room: str) -> None:
        await self.join_many([room])

    async def join_many(self, rooms: list[str]) -> dict[str, StreamPosition]:
        """Join ``rooms``; returns each room's position at the join (events after it arrive)."""
        new = [room for room in rooms if room not in self.rooms]
        for room in new:
            self.rooms.add(room)
            await self.runtime.join(room, self)
        # Subscribed first, then read: every event after the read position is delivered.
        positions = await self.runtime.broadcast.positions(sorted(set(rooms)))
        for room in new:
            self._floors[room] = self._since[room] = positions[room]
        if new:
            self._record_changed()
        return positions

    async def leave(self, room: str) -> None:
        if room in self.rooms:
            self.rooms.discard(room)
            self._floors.pop(room, None)
            self._since.pop(room, None)
            await self.runtime.leave(room, self)
            self._record_changed()

    def hold_rooms(self, rooms: set[str] | None = None) -> None:
        """Buffer live frames of ``rooms`` (None: of every room, also rooms joined meanwhile)
        while history is replayed."""
        self._hold = set() if rooms is None else rooms
        self._hold_all = rooms is None
        self._held = []

    def release_rooms(self, replayed_up_to: dict[str, StreamPosition]) -> None:
        """Send the buffered frames that the replay did not already cover, in order (and
        not those of users blocked meanwhile: the account's blocks may load after the join)."""
        held, self._hold, self._hold_all, self._held = self._held, None, False, []
        blocked = self.blocked_user_ids
        for room, offset, epoch, frame, sender in held:
            if room not in self.rooms or (sender and sender in blocked):
                continue  # left meanwhile, or blocked
            covered = replayed_up_to.get(room)
            if covered is None or covered.epoch != epoch or offset > covered.offset:
                self.outbound.push(frame)

    def covered(self, replayed_up_to: dict[str, StreamPosition]) -> None:
        """A resume covered these rooms up to these positions: every event at or below them was
        sent or is not to be (the floor a later recovery starts from)."""
        for room, position in replayed_up_to.items():
            since = self._since.get(room)
            if room in self.rooms and (
                since is None or since.epoch != position.epoch or since.offset < position.offset
            ):
                self._since[room] = position
        self._record_changed()

    def recovered_from(self, floors: dict[str, StreamPosition | None]) -> None:
        """This connection recovers one that had these floors: a later recovery starts from
        them too (the replay went out in seq order, and the client reports a seq)."""
        for room, floor in floors.items():
            if room in self.rooms and floor is not None:
                self._since[room] = floor

    # --- Socket.IO connection state recovery ----------------------------------------------

    def recovery_record(self) -> RecoveryRecord:
        """What this connection's pid recovers: its rooms with their floors, its character."""
        return RecoveryRecord(
            user_id=self.user_id,
            socket_id=self.socket_id,
            rooms={room: self._since.get(room) for room in sorted(self.rooms)},
            character_id=None if self.playing is None else self.playing.character_id,
        )

    def keep_recoverable(self, pid: str) -> None:
        """From now on ``pid`` recovers this connection: its record follows its rooms."""
        self.recovery_pid = pid
        self._record_changed()

    def _record_changed(self) -> None:
        if self.recovery_pid is None or not self._registered or self._record_ended:
            return
        self._record_dirty = True
        if self._record_writer is None:
            self._record_writer = self.runtime.loop.create_task(self._write_record())

    async def _write_record(self) -> None:
        """Write the record until it is current (changes while a write is under way are
        written next, in one go); best effort."""
        pid = self.recovery_pid
        try:
            while pid is not None and self._record_dirty and not self._record_ended:
                self._record_dirty = False
                try:
                    await self.runtime.recoveries.save(pid, self.recovery_record())
                except Exception as exc:  # Redis down (reported once), or a bug: not fatal
                    logger.debug("recovery record of %s not written: %s", self.socket_id, exc)
                    return
        finally:
            self._record_writer = None

    def _end_record_soon(self, *, recoverable: bool) -> None:
        if self.recovery_pid is None or self._record_ended or not self._registered:
            return
        self._record_ended = True
        record = self.recovery_record()
        self.runtime.loop.create_task(self._end_record(record, recoverable=recoverable))

    async def _end_record(self, record: RecoveryRecord, *, recoverable: bool) -> None:
        """The connection ended: its record recovers it for the window, or goes (after the
        write under way, if any, so that nothing brings it back)."""
        pid = self.recovery_pid
        writer = self._record_writer
        if pid is None:
            return
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), 2.0)
        try:
            await self.runtime.recoveries.end(pid, record, recoverable=recoverable)
        except Exception as exc:
            logger.debug("recovery record of %s not ended: %s", self.socket_id, exc)

    # --- token lifetime -----------------------------------------------------------------

    def schedule_expiry(self, token: TokenInfo) -> None:
        self._cancel_expiry()
        self.token = token
        delay = max(0.0, token.seconds_left())
        self._expiry = self.runtime.loop.call_later(delay, self.end_auth, ErrorCode.TOKEN_EXPIRED)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def end_auth(self, code: ErrorCode) -> None:
        """The token expired or was revoked: say so, then close 4001 with the code as reason."""
        if self.closed:
            return
        self.send_event("auth:expired", {"code": code.value})
        self.close(CloseCode.UNAUTHENTICATED, code.value)

    # --- server-initiated ends ----------------------------------------------------------

    def kick(self, reason: str, close_reason: str = CloseReason.KICKED) -> None:
        if self.closed:
            return
        self.send_event("session:kicked", {"reason": reason})
        self.close(CloseCode.FORBIDDEN, close_reason)

    def server_shutdown(self, reconnect_after_ms: int) -> None:
        if self.closed:
            return
        self.send_event("system:shutdown", {"reconnectAfterMs": reconnect_after_ms})
        self.close(CloseCode.SERVICE_RESTART, CloseReason.SERVER_RESTART)
