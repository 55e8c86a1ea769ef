"""What a connection sees while it opens, on both transports: ``sync:initial`` first
(PROTOCOL.md §5.1), then the live events its rooms got meanwhile, without those of users it
blocks; and Socket.IO's CONNECT answer only once the connection is in its rooms."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Block
from realtime.connection.session import Session
from realtime.transport.app import app_runtime
from tests.conftest import WS_TIMEOUT, access_for, connect

pytestmark = pytest.mark.django_db(transaction=True)

SIO_PATH = "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture
async def pair(make_user: Any) -> tuple[Any, Any]:
    """A user, and another user the first one blocks."""

    def create() -> tuple[Any, Any]:
        user, pest = make_user(), make_user()
        Block.objects.create(owner=user, blocked=pest)
        return user, pest

    return await database_sync_to_async(create)()


@pytest.fixture
def events_while_opening(monkeypatch: pytest.MonkeyPatch, pair: tuple[Any, Any]) -> None:
    """Once a connection of the user is in its rooms — its blocks not applied yet, no
    ``sync:initial`` yet — its user room gets an event from the user it blocks, then one from
    the server."""
    user, pest = pair
    real: Callable[..., Awaitable[Any]] = Session.open

    async def open_then_events(self: Session, *args: Any, **kwargs: Any) -> Any:
        offsets = await real(self, *args, **kwargs)
        if self.user_id == user.pk:
            broadcast = (await app_runtime()).broadcast
            room = f"user:{user.pk}"
            await broadcast.to_room(room, "test:opening", {"n": 1}, sender=pest.pk)
            await broadcast.to_room(room, "test:opening", {"n": 2})
        return offsets

    monkeypatch.setattr(Session, "open", open_then_events)


async def _native_frames(user: Any, count: int) -> list[tuple[str, Any]]:
    comm = await connect(f"/ws/game/?token={access_for(user)}")
    frames = []
    for _ in range(count):
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        frames.append((frame["event"], frame["data"]))
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()
    return frames


async def _sio_frames(user: Any, count: int) -> list[str]:
    comm = await connect(SIO_PATH)
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("0{")
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    frames = [await comm.receive_from(timeout=WS_TIMEOUT) for _ in range(count)]
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()
    return frames


@pytest.mark.usefixtures("events_while_opening")
async def test_native_sync_initial_comes_before_the_events_sent_while_it_opened(
    pair: tuple[Any, Any],
) -> None:
    user, _ = pair
    frames = await _native_frames(user, 2)
    assert [event for event, _ in frames] == ["sync:initial", "test:opening"], frames
    assert frames[1][1] == {"n": 2}  # not the blocked user's


@pytest.mark.usefixtures("events_while_opening")
async def test_socketio_connect_answer_then_sync_initial_then_the_events_sent_meanwhile(
    pair: tuple[Any, Any],
) -> None:
    user, _ = pair
    answer, initial, event = await _sio_frames(user, 3)
    assert answer.startswith("40{") and json.loads(answer[2:])["pid"], answer
    assert initial.startswith('42["sync:initial"'), initial
    name, data, meta, _offset = json.loads(event[2:])
    assert (name, data, meta["room"]) == ("test:opening", {"n": 2}, f"user:{user.pk}")


@pytest.fixture
def slow_rooms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Joining the account's rooms takes a while (a Redis far away)."""
    real: Callable[..., Awaitable[Any]] = Session.open

    async def slow_open(self: Session, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Session, "open", slow_open)


@pytest.mark.usefixtures("slow_rooms")
async def test_an_event_sent_after_the_socketio_connect_answer_reaches_the_client(
    make_user: Any,
) -> None:
    """socket.io-client's ``connect`` fires on the CONNECT answer; what the server sends to
    the user from then on must arrive (the answer used to precede the join: lost)."""
    user = await database_sync_to_async(make_user)()
    comm = await connect(SIO_PATH)
    assert (await comm.receive_from(timeout=WS_TIMEOUT)).startswith("0{")
    await comm.send_to(text_data="40" + json.dumps({"token": access_for(user)}))
    answer = await comm.receive_from(timeout=WS_TIMEOUT)
    assert answer.startswith("40{"), answer
    await (await app_runtime()).broadcast.to_room(f"user:{user.pk}", "test:after", {"n": 3})
    frames = [await comm.receive_from(timeout=WS_TIMEOUT) for _ in range(2)]
    assert frames[0].startswith('42["sync:initial"'), frames
    assert frames[1].startswith('42["test:after",{"n":3}'), frames
    await comm.disconnect()


async def test_a_block_made_while_the_connection_opens_holds(
    monkeypatch: pytest.MonkeyPatch, make_user: Any
) -> None:
    """A block stored after the handshake checked the token but before the connection is in
    its rooms (so before it could hear the ``blocks`` control) still applies: the account's
    state is read once the connection is in its rooms."""
    user, pest = await database_sync_to_async(lambda: (make_user(), make_user()))()
    real: Callable[..., Awaitable[Any]] = Session.open

    async def block_then_open(self: Session, *args: Any, **kwargs: Any) -> Any:
        await database_sync_to_async(Block.objects.create)(owner=user, blocked=pest)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Session, "open", block_then_open)
    comm = await connect(f"/ws/game/?token={access_for(user)}")
    assert (await comm.receive_json_from(timeout=WS_TIMEOUT))["event"] == "sync:initial"
    broadcast = (await app_runtime()).broadcast
    await broadcast.to_room(f"user:{user.pk}", "test:after", {"n": 1}, sender=pest.pk)
    await broadcast.to_room(f"user:{user.pk}", "test:after", {"n": 2})
    frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
    assert (frame["event"], frame["data"]) == ("test:after", {"n": 2}), frame
    await comm.disconnect()
