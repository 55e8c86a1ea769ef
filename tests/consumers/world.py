"""Helpers for consumer tests that play in the demo world (PROTOCOL.md §9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import call_command

from characters.models import Character, Zone
from tests.conftest import WS_TIMEOUT, connect_as


@dataclass
class Player:
    user: Any
    character: Character

    @property
    def user_id(self) -> str:
        return str(self.user.pk)

    @property
    def character_id(self) -> str:
        return str(self.character.pk)


def seed_world() -> dict[str, Player]:
    """Seed the demo world; the four demo players by username."""
    call_command("seed_demo", verbosity=0)
    players = {}
    for name in ("alice", "bob", "carol", "dave"):
        user = get_user_model().objects.get(username=name)
        players[name] = Player(user, Character.objects.get(owner=user))
    return players


def second_character(player: Player, name: str, zone_key: str) -> Character:
    zone = Zone.objects.get(key=zone_key)
    return Character.objects.create(
        owner=player.user, name=name, zone=zone, pos_x=zone.spawn_x, pos_y=zone.spawn_y
    )


async def request(
    comm: WebsocketCommunicator, event: str, data: Any, ack: int | None = None
) -> dict[str, Any]:
    """Send ``event`` and return the next frame addressed to this request.

    Room broadcasts (frames with a ``room``) that arrive meanwhile are skipped: a reply or an
    ack is never a room event.
    """
    frame: dict[str, Any] = {"event": event, "data": data}
    if ack is not None:
        frame["ack"] = ack
    await comm.send_json_to(frame)
    for _ in range(50):
        reply = await comm.receive_json_from(timeout=WS_TIMEOUT)
        if "room" not in reply:
            return reply  # type: ignore[no-any-return]
    raise AssertionError(f"no reply to {event} in 50 frames")


async def ask(comm: WebsocketCommunicator, event: str, data: Any, reply: str) -> dict[str, Any]:
    """Send ``event`` and return the data of the next ``reply`` event, skipping broadcasts."""
    await comm.send_json_to({"event": event, "data": data})
    return await next_event(comm, reply)


async def next_event(comm: WebsocketCommunicator, event: str) -> dict[str, Any]:
    """The data of the next ``event`` frame, skipping others."""
    for _ in range(50):
        frame = await comm.receive_json_from(timeout=WS_TIMEOUT)
        if frame.get("event") == event:
            return frame["data"]  # type: ignore[no-any-return]
    raise AssertionError(f"no {event} in 50 frames")


async def play(player: Player, character_id: str | None = None) -> WebsocketCommunicator:
    """Connect as ``player`` and select their character; the ``character:selected`` is read."""
    comm, _ = await connect_as(player.user)
    frame = await request(
        comm, "character:select", {"characterId": character_id or player.character_id}
    )
    assert frame["event"] == "character:selected", frame
    return comm


async def nothing_more(comm: WebsocketCommunicator, wait: float = 0.3) -> None:
    if not await comm.receive_nothing(timeout=wait):
        raise AssertionError(f"unexpected frame: {await comm.receive_output()}")


async def no_event(comm: WebsocketCommunicator, event: str, wait: float = 0.3) -> None:
    """No ``event`` frame arrives within ``wait`` seconds (other frames are ignored)."""
    while not await comm.receive_nothing(timeout=wait):
        frame = await comm.receive_json_from()
        assert frame.get("event") != event, frame
