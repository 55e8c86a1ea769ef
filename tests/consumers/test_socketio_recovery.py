"""Socket.IO connection state recovery (PROTOCOL.md §1.2) on the full ASGI app, frame by frame.

A Socket.IO connection's CONNECT answer carries a ``pid`` and its room events the bus ``seq``
as their last argument; a client that comes back with ``{pid, offset}`` within the window gets
its rooms, what it missed (merged in seq order, without its own events or those of users it
blocks) before the CONNECT answer with the same pid, then ``sync:initial`` with its character.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from realtime.fanout import rooms
from realtime.transport.app import app_runtime
from tests.conftest import WS_TIMEOUT, access_for, connect
from tests.consumers.polling import Poller
from tests.consumers.world import Player, ask, next_event, play, request, seed_world

pytestmark = pytest.mark.django_db(transaction=True)

SIO_PATH = "/socket.io/?EIO=4&transport=websocket"
VILLAGE = "zone:starting_village"


@pytest.fixture
async def world() -> dict[str, Player]:
    return await database_sync_to_async(seed_world)()


def args_of(frame: str) -> list[Any]:
    assert frame.startswith("42["), frame
    return json.loads(frame[2:])  # type: ignore[no-any-return]


class SioClient:
    """A raw Socket.IO client over WebSocket that keeps what socket.io-client keeps: the pid of
    the CONNECT answer and the last recovery offset (the last argument, when it is a string)."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.comm: WebsocketCommunicator | None = None
        self.pid: str | None = None
        self.offset: str | None = None
        self.socket_id = ""

    def _saw(self, frame: str) -> None:
        if frame.startswith("42[") and self.pid is not None:
            last = args_of(frame)[-1]
            if isinstance(last, str):
                self.offset = last

    async def connect(self, **extra: Any) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        """CONNECT (with ``{pid, offset}`` when it has them): (frames before the answer, the
        answer, sync:initial)."""
        comm = self.comm = await connect(SIO_PATH)
        assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("0{")
        auth: dict[str, Any] = {"token": access_for(self.user)}
        if self.pid is not None:
            auth = {"pid": self.pid, **({} if self.offset is None else {"offset": self.offset})}
            auth["token"] = access_for(self.user)
        auth.update(extra)
        await comm.send_to(text_data="40" + json.dumps(auth))
        before: list[str] = []
        while True:
            frame = await comm.receive_from(timeout=WS_TIMEOUT)
            if frame.startswith("40{"):
                break
            before.append(frame)
        answer = json.loads(frame[2:])
        self.pid = answer.get("pid")
        for replayed in before:
            self._saw(replayed)
        self.socket_id = answer["sid"]
        name, initial, *_ = args_of(await comm.receive_from(timeout=WS_TIMEOUT))
        assert name == "sync:initial", name
        return before, answer, initial

    async def event(self, name: str) -> list[Any]:
        """The arguments of the next ``name`` event (others are skipped, offsets kept)."""
        assert self.comm is not None
        for _ in range(50):
            frame = await self.comm.receive_from(timeout=WS_TIMEOUT)
            self._saw(frame)
            if frame.startswith("42[") and args_of(frame)[0] == name:
                return args_of(frame)[1:]
        raise AssertionError(f"no {name}")

    async def ack(self, event: str, data: Any) -> dict[str, Any]:
        assert self.comm is not None
        await self.comm.send_to(text_data="421" + json.dumps([event, data]))
        for _ in range(50):
            frame = await self.comm.receive_from(timeout=WS_TIMEOUT)
            self._saw(frame)
            if frame.startswith("431["):
                return json.loads(frame[3:])[0]  # type: ignore[no-any-return]
        raise AssertionError(f"no ack to {event}")

    async def drop(self) -> None:
        """The transport goes away (no Socket.IO DISCONNECT)."""
        assert self.comm is not None
        await self.comm.disconnect()
        await settle()

    async def quiet(self, wait: float = 0.3) -> list[str]:
        """Frames that arrive within ``wait`` seconds."""
        assert self.comm is not None
        frames = []
        while not await self.comm.receive_nothing(timeout=wait):
            frames.append(await self.comm.receive_from())
        return frames


async def settle() -> None:
    """Let the server finish what a disconnect started (presence, the record's end)."""
    for _ in range(20):
        await asyncio.sleep(0.02)


def missed_chat(frames: list[str]) -> list[str]:
    return [args_of(f)[1]["message"] for f in frames if args_of(f)[0] == "chat:message"]


async def say(comm: WebsocketCommunicator, text: str, channel: str = "zone") -> None:
    reply = await request(comm, "chat:message", {"channel": channel, "message": text}, ack=1)
    assert reply["data"]["ok"] is True, reply


async def sio_playing(player: Player) -> SioClient:
    client = SioClient(player.user)
    await client.connect()
    selected = await client.ack("character:select", {"characterId": player.character_id})
    assert selected["ok"] is True, selected
    return client


async def test_the_connect_answer_has_a_pid_and_room_events_end_with_the_recovery_offset(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    await say(bob, "one")
    await say(bob, "two")
    first = await alice.event("chat:message")
    second = await alice.event("chat:message")

    assert isinstance(alice.pid, str) and len(alice.pid) >= 16
    # [data, {room, offset, epoch}, "<seq>"]: the seq grows from event to event.
    assert len(first) == 3 and first[1]["room"] == VILLAGE, first
    assert first[2].isdigit() and second[2].isdigit()
    assert int(second[2]) > int(first[2])
    assert alice.offset == second[2]
    await bob.disconnect()


@override_settings(AETURNIS_SIO_RECOVERY_S=0)
async def test_with_recovery_off_there_is_no_pid(world: dict[str, Player]) -> None:
    client = SioClient(world["alice"].user)
    _, answer, _ = await client.connect()
    assert set(answer) == {"sid"}


async def test_a_dropped_connection_gets_its_rooms_and_missed_events_back_in_order(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    await say(bob, "seen before the drop")
    await alice.event("chat:message")
    old_socket, pid = alice.socket_id, alice.pid
    await alice.drop()
    offline = await next_event(bob, "character:offline")

    runtime = await app_runtime()
    await say(bob, "missed in the zone")
    await say(bob, "missed in the guild", channel="guild")
    await runtime.broadcast.to_user(world["alice"].user.pk, "quest:update", {"step": 2})
    await say(bob, "missed last")
    replayed, answer, initial = await alice.connect()

    assert offline["characterId"] == world["alice"].character_id
    # The missed events, merged across rooms in the order they were published, each once, then
    # the CONNECT answer with the same pid (socket.recovered), then sync:initial.
    names = [args_of(f)[0] for f in replayed]
    assert names == ["chat:message", "chat:message", "quest:update", "chat:message"], replayed
    assert missed_chat(replayed) == ["missed in the zone", "missed in the guild", "missed last"]
    seqs = [int(args_of(f)[-1]) for f in replayed]
    assert seqs == sorted(seqs)
    assert answer["pid"] == pid and answer["sid"] != old_socket
    assert initial["socketId"] == answer["sid"]
    # Its rooms and character are back: the character is selected, it plays on at once.
    assert initial["character"]["id"] == world["alice"].character_id
    assert {VILLAGE, f"character:{world['alice'].character_id}"} <= set(initial["rooms"])
    assert any(room.startswith("guild:") for room in initial["rooms"])
    assert alice.offset == args_of(replayed[-1])[-1]
    online = await next_event(bob, "character:online")
    assert online["characterId"] == world["alice"].character_id
    back = await alice.ack("chat:message", {"channel": "zone", "message": "back"})
    assert back["ok"] is True, back
    assert (await next_event(bob, "chat:message"))["message"] == "back"

    # Live events go on, each once.
    await say(bob, "after the recovery")
    data, _, offset = await alice.event("chat:message")
    assert data["message"] == "after the recovery" and int(offset) > seqs[-1]
    leftovers = await alice.quiet()
    assert missed_chat([f for f in leftovers if f.startswith("42[")]) == [], leftovers
    await bob.disconnect()


async def test_own_events_and_blocked_users_are_not_replayed(world: dict[str, Player]) -> None:
    carol = await play(world["carol"])
    alice = await sio_playing(world["alice"])
    blocked = await alice.ack("chat:block", {"userId": world["carol"].user_id})
    assert blocked["ok"] is True, blocked
    bob = await play(world["bob"])
    await say(bob, "seen")
    await alice.event("chat:message")
    mine = await alice.ack("chat:message", {"channel": "zone", "message": "my own"})
    assert mine["ok"] is True
    await next_event(bob, "chat:message")
    await alice.drop()
    await say(carol, "from someone blocked")
    await say(bob, "missed")
    replayed, answer, _ = await alice.connect()

    assert missed_chat(replayed) == ["missed"], replayed
    assert "character:offline" not in [args_of(f)[0] for f in replayed]  # its own going away
    assert answer["pid"] == alice.pid
    await bob.disconnect()
    await carol.disconnect()


async def test_a_client_that_never_got_a_room_event_recovers_from_where_it_joined(
    world: dict[str, Player],
) -> None:
    alice = SioClient(world["alice"].user)
    await alice.connect()
    assert alice.offset is None
    pid = alice.pid
    await alice.drop()
    runtime = await app_runtime()
    await runtime.broadcast.to_user(world["alice"].user.pk, "quest:update", {"step": 1})
    replayed, answer, initial = await alice.connect()

    assert [args_of(f)[:2] for f in replayed] == [["quest:update", {"step": 1}]]
    assert answer["pid"] == pid
    assert initial["character"] is None


@pytest.mark.parametrize(
    "extra",
    [
        {"pid": "not-a-pid-we-gave"},
        {"offset": "not a number"},
    ],
    ids=["unknown-pid", "offset-not-ours"],
)
async def test_an_unknown_pid_or_a_foreign_offset_is_a_normal_connect(
    world: dict[str, Player], extra: dict[str, Any]
) -> None:
    alice = await sio_playing(world["alice"])
    pid = alice.pid
    await alice.drop()
    replayed, answer, initial = await alice.connect(**extra)
    assert replayed == [] and answer["pid"] != pid and answer["pid"]
    assert initial["character"] is None


async def test_another_users_token_does_not_recover_the_connection(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    await alice.drop()
    thief = SioClient(world["bob"].user)
    thief.pid, thief.offset = alice.pid, alice.offset
    replayed, answer, initial = await thief.connect()
    assert replayed == [] and answer["pid"] != alice.pid
    assert initial["userId"] == world["bob"].user_id and initial["character"] is None


async def test_a_socketio_disconnect_ends_the_connection_for_good(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    pid = alice.pid
    assert alice.comm is not None
    await alice.comm.send_to(text_data="41")
    await alice.comm.receive_output(timeout=WS_TIMEOUT)
    await settle()
    _, answer, initial = await alice.connect()
    assert answer["pid"] != pid and initial["character"] is None


@override_settings(AETURNIS_SIO_RECOVERY_S=0.5)
async def test_past_the_window_it_is_a_normal_connect(world: dict[str, Player]) -> None:
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    pid = alice.pid
    await alice.drop()
    await say(bob, "said too long ago")
    await asyncio.sleep(0.8)
    replayed, answer, initial = await alice.connect()
    assert replayed == [] and answer["pid"] != pid
    assert initial["character"] is None
    await bob.disconnect()


@override_settings(AETURNIS_HISTORY_SIZE=1)
async def test_a_gap_longer_than_a_rooms_history_is_a_normal_connect(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    await say(bob, "seen")
    await alice.event("chat:message")
    pid = alice.pid
    await alice.drop()
    await say(bob, "first missed")
    await say(bob, "second missed")
    replayed, answer, initial = await alice.connect()
    assert replayed == [] and answer["pid"] != pid
    assert VILLAGE not in initial["rooms"] and initial["character"] is None
    # A new connection, with rooms of its own: live events arrive once.
    await say(bob, "after")
    await alice.ack("character:select", {"characterId": world["alice"].character_id})
    await say(bob, "live")
    assert (await alice.event("chat:message"))[0]["message"] == "live"
    await bob.disconnect()


async def test_a_room_whose_stream_lost_its_history_is_a_normal_connect(
    world: dict[str, Player],
) -> None:
    """A new epoch (Redis lost the stream): nothing after the old floor can be placed."""
    from realtime.core.redis_client import key, redis_enabled, sync_redis

    if not redis_enabled():
        pytest.skip("the embedded default loses every stream with its process only")
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    pid = alice.pid
    await alice.drop()
    sync_redis().delete(key("room", VILLAGE, "meta"), key("room", VILLAGE, "history"))
    await say(bob, "in a new epoch")
    replayed, answer, _ = await alice.connect()
    assert replayed == [] and answer["pid"] != pid
    await bob.disconnect()


async def test_a_character_moved_elsewhere_meanwhile_is_a_normal_connect(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    pid = alice.pid
    await alice.drop()
    other = await play(world["alice"])  # the same account on another connection walks on
    changed = await ask(
        other, "character:change_zone", {"zone": "meadow_path"}, "character:zone_changed"
    )
    assert changed["zone"] == "meadow_path"
    _, answer, initial = await alice.connect()
    assert answer["pid"] != pid and initial["character"] is None
    await other.disconnect()


async def test_recovered_twice_in_a_row_nothing_is_lost_or_repeated(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    pid = alice.pid
    await alice.drop()
    await say(bob, "a")
    await say(bob, "b")
    first, _, _ = await alice.connect()
    await say(bob, "c")
    assert (await alice.event("chat:message"))[0]["message"] == "c"
    await alice.drop()
    await say(bob, "d")
    second, answer, _ = await alice.connect()
    assert missed_chat(first) == ["a", "b"] and missed_chat(second) == ["d"]
    assert answer["pid"] == pid
    await bob.disconnect()


async def test_after_a_sync_resume_replayed_frames_carry_no_recovery_offset(
    world: dict[str, Player],
) -> None:
    alice = await sio_playing(world["alice"])
    bob = await play(world["bob"])
    await say(bob, "one")
    _, meta, offset = await alice.event("chat:message")
    await say(bob, "two")
    await alice.event("chat:message")
    resumed = await alice.ack("sync:resume", {"rooms": {VILLAGE: meta["offset"]}})
    assert resumed["rooms"][VILLAGE]["recovered"] is True
    # The replay of "two" came before the ack, without a string last argument: the client's
    # recovery offset is still the live "two"'s.
    assert alice.offset is not None and int(alice.offset) > int(offset)
    pid = alice.pid
    await alice.drop()
    await say(bob, "three")
    replayed, answer, _ = await alice.connect()
    assert missed_chat(replayed) == ["three"] and answer["pid"] == pid
    await bob.disconnect()


async def test_recovery_over_long_polling(world: dict[str, Player]) -> None:
    bob = await play(world["bob"])
    poller = Poller()
    await poller.open()
    await poller.post_ok("40" + json.dumps({"token": access_for(world["alice"].user)}))
    answer, _ = await poller.receive(2)
    pid = json.loads(answer[2:])["pid"]
    await poller.post_ok(
        "421" + json.dumps(["character:select", {"characterId": world["alice"].character_id}])
    )
    (selected,) = await poller.receive(1)
    assert selected.startswith("431[")
    await say(bob, "seen over polling")
    (seen,) = await poller.receive(1)
    offset = args_of(seen)[-1]
    await poller.post_ok("1")  # the engine closes (socket.io-client does so before reconnecting)
    await settle()
    await say(bob, "missed over polling")

    again = Poller()
    await again.open()
    auth = {"pid": pid, "offset": offset, "token": access_for(world["alice"].user)}
    await again.post_ok("40" + json.dumps(auth))
    replayed, answer_again, initial_again = await again.receive(3)
    assert missed_chat([replayed]) == ["missed over polling"]
    assert json.loads(answer_again[2:])["pid"] == pid
    assert args_of(initial_again)[1]["character"]["id"] == world["alice"].character_id
    await bob.disconnect()


async def test_a_kicked_connection_is_not_recovered(world: dict[str, Player]) -> None:
    runtime = await app_runtime()
    alice = await sio_playing(world["alice"])
    pid = alice.pid
    await runtime.broadcast.control(rooms.user_room(world["alice"].user.pk), "kick", reason="x")
    await alice.event("session:kicked")
    assert alice.comm is not None
    await alice.comm.receive_output(timeout=WS_TIMEOUT)  # 41, then the close
    await alice.drop()
    _, answer, initial = await alice.connect()
    assert answer["pid"] != pid and initial["character"] is None
