"""Zone chat under load across two server processes (PROTOCOL.md §5.3, §6, §8).

Two daphne processes share Redis and PostgreSQL. Four senders (five sending sockets) put 500
``chat:message`` into one zone at once while listeners and the senders' other sockets watch from
both processes. Every message must be stored exactly once and reach every eligible socket
exactly once, in one order (the room's offsets), with blocks and the sender's exclusion applied.

Every test plays its own users and characters (unique names), so it does not depend on the demo
characters.

Run: ``DATABASE_URL=postgres://... REDIS_URL=redis://... pytest tests/e2e/test_chat_e2e.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from itertools import combinations, pairwise
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import (
    RELAXED_IP_LIMITS,
    ServerProcess,
    connect_authenticated,
    is_int,
    obtain_tokens,
    recv_event,
    requires_redis_and_postgres,
)
from tests.e2e.players import Player, create_player

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
]

VILLAGE = "starting_village"
ZONE_ROOM = f"zone:{VILLAGE}"
GENEROUS_TIMEOUT_S = 5.0
# How long the burst may take, from the first send to the last delivery.
COLLECT_TIMEOUT_S = 20.0
# After the end barrier, every socket is watched this long for stray (duplicate, late) frames.
TRAILING_QUIET_S = 0.5
MESSAGES_PER_SENDING_SOCKET = 100


# --- players ------------------------------------------------------------------------------------


async def stored_messages() -> list[dict[str, Any]]:
    """Every ``ChatMessage`` row, read from the database now."""
    from channels.db import database_sync_to_async

    def read() -> list[dict[str, Any]]:
        from chat.models import ChatMessage

        return [
            dict(row)
            for row in ChatMessage.objects.order_by("id").values(
                "id",
                "channel",
                "zone__key",
                "guild_id",
                "sender_id",
                "sender_character_id",
                "sender_name",
                "recipient_id",
                "text",
                "filtered",
                "sent_ms",
                "deleted_at",
            )
        ]

    rows: list[dict[str, Any]] = await database_sync_to_async(read)()
    return rows


# --- client helpers -----------------------------------------------------------------------------


def frame_text(event: str, data: Any, ack: int | None = None) -> str:
    frame: dict[str, Any] = {"event": event, "data": data}
    if ack is not None:
        frame["ack"] = ack
    return json.dumps(frame)


@contextlib.asynccontextmanager
async def playing(
    server: ServerProcess, player: Player, token: str
) -> AsyncIterator[ClientConnection]:
    """A connection of ``player`` on ``server`` with the player's character selected."""
    async with connect_authenticated(server, token) as (ws, initial):
        assert initial["userId"] == player.uid, initial
        await ws.send(frame_text("character:select", {"characterId": player.cid}))
        selected = await recv_event(ws, "character:selected", GENEROUS_TIMEOUT_S)
        assert selected["data"]["character"]["id"] == player.cid, selected
        assert selected["data"]["character"]["zone"] == VILLAGE, selected
        yield ws


@dataclass
class Sent:
    """One ``chat:message`` a socket sent, as its ack described it."""

    socket: str
    player: Player
    text: str
    ack: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        assert self.ack is not None
        return str(self.ack["data"]["id"])


@dataclass
class Conn:
    """One socket of the test and everything it received during the burst."""

    label: str
    player: Player
    server: ServerProcess
    ws: ClientConnection
    sends: dict[int, Sent] = field(default_factory=dict)  # ack id -> message
    acks: dict[int, dict[str, Any]] = field(default_factory=dict)
    unexpected_acks: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # chat:message, arrival order
    others: list[dict[str, Any]] = field(default_factory=list)
    trailing: list[dict[str, Any]] = field(default_factory=list)
    end_barrier: dict[str, Any] | None = None
    problem: str = ""
    acks_done: asyncio.Event = field(default_factory=asyncio.Event)
    last_message_at: float = 0.0

    def record_ack(self, frame: dict[str, Any]) -> None:
        ack = frame["ack"]
        if ack not in self.sends or ack in self.acks:
            self.unexpected_acks.append(frame)
            return
        self.acks[ack] = frame
        self.sends[ack].ack = frame
        if len(self.acks) == len(self.sends):
            self.acks_done.set()

    async def collect(self, end_marker: str, deadline: float) -> None:
        """Read every frame until the end barrier (an emote with ``end_marker``) arrives."""
        if not self.sends:
            self.acks_done.set()
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    raw = await self.ws.recv()
            except TimeoutError:
                self.problem = f"no end barrier within {COLLECT_TIMEOUT_S} s"
                return
            except ConnectionClosed as exc:
                self.problem = f"socket closed during the burst: {exc!r}"
                return
            frame = json.loads(raw)
            if not isinstance(frame, dict):
                self.others.append({"non-object frame": frame})
            elif "ack" in frame and "event" not in frame:
                self.record_ack(frame)
            elif frame.get("event") == "chat:message":
                self.messages.append(frame)
                self.last_message_at = time.monotonic()
            elif frame.get("event") == "chat:emote" and frame["data"].get("target") == end_marker:
                self.end_barrier = frame
                return
            else:
                self.others.append(frame)

    async def drain(self, seconds: float) -> None:
        """Whatever else arrives within ``seconds`` (there should be nothing)."""
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            async with asyncio.timeout(seconds):
                while True:
                    self.trailing.append(json.loads(await self.ws.recv()))

    def describe(self) -> str:
        return f"{self.label} (user {self.player.uid} on {self.server.name})"


def sample(items: Iterable[Any], n: int = 5) -> list[Any]:
    return sorted(items, key=str)[:n]


async def send_burst(conn: Conn) -> None:
    """Send every message of ``conn`` as fast as the socket takes them, acks read elsewhere."""
    for ack, sent in conn.sends.items():
        await conn.ws.send(
            frame_text("chat:message", {"channel": "zone", "message": sent.text}, ack)
        )


async def barrier(
    emitter: Conn, conns: list[Conn], marker: str, *, timeout: float
) -> dict[str, dict[str, Any]]:
    """``emitter`` waves with ``marker``; each socket's copy of that emote (senders included)."""
    await emitter.ws.send(frame_text("chat:emote", {"emote": "wave", "target": marker}))
    frames = await asyncio.gather(
        *(recv_event(c.ws, "chat:emote", timeout) for c in conns),
    )
    for conn, frame in zip(conns, frames, strict=True):
        assert frame["data"]["target"] == marker, (conn.label, frame)
        assert frame["data"]["userId"] == emitter.player.uid, (conn.label, frame)
        assert frame["room"] == ZONE_ROOM and is_int(frame["offset"]), (conn.label, frame)
    return {c.label: f for c, f in zip(conns, frames, strict=True)}


# --- the test ---------------------------------------------------------------------------------


async def test_500_messages_across_two_processes_are_stored_once_and_delivered_exactly_once(
    server_factory: Any,
) -> None:
    limits = {**json.loads(RELAXED_IP_LIMITS), "chat:message": "1000/60"}
    first, second = server_factory(
        "daphne", "daphne", extra_env={"AETURNIS_RATE_LIMITS": json.dumps(limits)}
    )
    players = {name: await create_player() for name in ("s0", "s1", "s2", "s3", "l0", "l1")}
    tokens = {}
    for name, player in players.items():
        tokens[name], _ = await obtain_tokens(first, player.username)

    # (socket label, user, process, sends?). S2 sends from a socket on each process; S3 sends
    # on the second process and watches its own messages arrive on the first; the listener l0
    # (on both processes) blocks s1; l1 blocks nobody and sends the barriers.
    layout = [
        ("s0", "s0", first, True),
        ("s1", "s1", second, True),
        ("s2a", "s2", first, True),
        ("s2b", "s2", second, True),
        ("s3", "s3", second, True),
        ("s3x", "s3", first, False),
        ("l0a", "l0", first, False),
        ("l0b", "l0", second, False),
        ("l1", "l1", first, False),
    ]
    blocker, blocked = players["l0"], players["s1"]

    async with contextlib.AsyncExitStack() as stack:
        conns: list[Conn] = []
        for label, user, server, sends in layout:
            player = players[user]
            ws = await stack.enter_async_context(playing(server, player, tokens[user]))
            conn = Conn(label, player, server, ws)
            if sends:
                for n in range(MESSAGES_PER_SENDING_SOCKET):
                    conn.sends[n + 1] = Sent(label, player, f"{label}-{n}")
            conns.append(conn)
        by_label = {c.label: c for c in conns}
        sending = [c for c in conns if c.sends]
        total = sum(len(c.sends) for c in sending)
        assert total == 500, total

        # l0 blocks s1 on its first-process socket, before any message is sent.
        await by_label["l0a"].ws.send(frame_text("chat:block", {"userId": blocked.uid}))
        blocked_reply = await recv_event(by_label["l0a"].ws, "chat:blocked", GENEROUS_TIMEOUT_S)
        assert blocked_reply["data"] == {"userId": blocked.uid}, blocked_reply
        # Start barrier: the block reached l0's other socket through the same ordered Redis
        # subscription before this zone event did, so once l0b sees the wave, it filters s1.
        # The barrier also leaves every socket with nothing buffered before the burst.
        run = uuid.uuid4().hex[:8]
        starts = await barrier(by_label["l1"], conns, f"start-{run}", timeout=GENEROUS_TIMEOUT_S)
        start_offsets = {f["offset"] for f in starts.values()}
        assert len(start_offsets) == 1, starts
        (start_offset,) = start_offsets

        end_marker = f"end-{run}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COLLECT_TIMEOUT_S
        readers = [asyncio.create_task(c.collect(end_marker, deadline)) for c in conns]
        began = time.monotonic()
        try:
            await asyncio.gather(*(send_burst(c) for c in sending))
            sent_at = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await asyncio.gather(*(c.acks_done.wait() for c in sending))
            acked_at = time.monotonic()
            missing_acks = {
                c.label: len(c.sends) - len(c.acks)
                for c in sending
                if c.problem or not c.acks_done.is_set()
            }
            assert not missing_acks, (
                f"acks missing after {COLLECT_TIMEOUT_S} s: {missing_acks}; "
                f"problems: {[(c.label, c.problem) for c in conns if c.problem]}"
            )
            # End barrier: every message was published before its ack was sent, so a socket
            # that has the wave has everything the burst will ever bring it.
            await by_label["l1"].ws.send(
                frame_text("chat:emote", {"emote": "wave", "target": end_marker})
            )
            await asyncio.gather(*readers)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        delivered_at = max(c.last_message_at for c in conns)
        await asyncio.gather(*(c.drain(TRAILING_QUIET_S) for c in conns))

    # --- timing (measured, not asserted) ---
    ack_s = acked_at - began
    deliver_s = delivered_at - began
    frames = sum(len(c.messages) for c in conns)
    print(
        f"\nchat e2e: {total} messages from {len(sending)} sockets on 2 processes: "
        f"sent in {sent_at - began:.2f} s, all acked (stored + published) in {ack_s:.2f} s "
        f"= {total / ack_s:.0f} msg/s; {frames} deliveries to {len(conns)} sockets done in "
        f"{deliver_s:.2f} s = {frames / deliver_s:.0f} frames/s"
    )

    # --- no socket lost, every burst frame accounted for ---
    assert [(c.label, c.problem) for c in conns if c.problem] == [], "sockets with problems"
    assert {c.label: c.unexpected_acks for c in conns if c.unexpected_acks} == {}
    assert {c.label: sample(map(json.dumps, c.others)) for c in conns if c.others} == {}
    assert {c.label: c.trailing[:5] for c in conns if c.trailing} == {}, "frames after the end"
    end_offsets = {c.end_barrier["offset"] for c in conns if c.end_barrier is not None}
    assert len(end_offsets) == 1, end_offsets
    (end_offset,) = end_offsets

    # --- acks: 500, all ok, distinct ids ---
    all_sent = [s for c in sending for s in c.sends.values()]
    refused = [s.ack for s in all_sent if s.ack is None or s.ack["data"].get("ok") is not True]
    assert refused == [], f"{len(refused)} refused or unanswered, e.g. {refused[:3]}"
    for s in all_sent:
        assert s.ack is not None
        data = s.ack["data"]
        assert set(data) == {"ok", "id", "channel", "serverTimestamp"}, s.ack
        assert data["channel"] == "zone", s.ack
        assert isinstance(data["id"], str) and data["id"].isdigit(), s.ack
        assert is_int(data["serverTimestamp"]) and data["serverTimestamp"] > 0, s.ack
    by_id = {s.id: s for s in all_sent}
    assert len(by_id) == total, f"{total - len(by_id)} duplicate ids among the acks"

    # --- the database holds exactly those 500 messages ---
    rows = await stored_messages()
    row_ids = [str(r["id"]) for r in rows]
    assert len(rows) == total, f"{len(rows)} ChatMessage rows for {total} acknowledged messages"
    assert set(row_ids) == set(by_id), (
        f"rows without ack: {sample(set(row_ids) - set(by_id))}, "
        f"acks without row: {sample(set(by_id) - set(row_ids))}"
    )
    for row in rows:
        s = by_id[str(row["id"])]
        expected_row = {
            "id": row["id"],
            "channel": "zone",
            "zone__key": VILLAGE,
            "guild_id": None,
            "sender_id": s.player.user_id,
            "sender_character_id": s.player.character_id,
            "sender_name": s.player.character_name,
            "recipient_id": None,
            "text": s.text,
            "filtered": False,
            "sent_ms": s.ack["data"]["serverTimestamp"] if s.ack else None,
            "deleted_at": None,
        }
        assert row == expected_row, (row, expected_row)

    # --- every eligible socket got every eligible message exactly once, intact ---
    offset_of: dict[str, int] = {}
    for conn in conns:
        counts = Counter(str(f["data"]["id"]) for f in conn.messages)
        duplicates = {i: n for i, n in counts.items() if n > 1}
        assert duplicates == {}, f"{conn.describe()} got duplicates: {sample(duplicates.items())}"
        expected_ids = {
            s.id
            for s in all_sent
            if s.socket != conn.label and not (conn.player == blocker and s.player == blocked)
        }
        got = set(counts)
        assert got == expected_ids, (
            f"{conn.describe()}: {len(got)} of {len(expected_ids)} expected; "
            f"missing e.g. {sample(by_id[i].text for i in expected_ids - got)}, "
            f"unexpected e.g. {sample(by_id[i].text for i in got - expected_ids if i in by_id)}"
        )
        own_texts = {s.text for s in conn.sends.values()}
        own = [f["data"]["message"] for f in conn.messages if f["data"]["message"] in own_texts]
        assert own == [], f"{conn.describe()} got its own messages back: {own[:5]}"
        if conn.player == blocker:
            from_blocked = [f for f in conn.messages if f["data"]["userId"] == blocked.uid]
            assert from_blocked == [], f"{conn.describe()} got {len(from_blocked)} from s1"
        offsets = []
        for frame in conn.messages:
            s = by_id[frame["data"]["id"]]
            expected_frame = {
                "event": "chat:message",
                "room": ZONE_ROOM,
                "offset": frame.get("offset"),
                "epoch": frame.get("epoch"),
                "data": {
                    "id": s.id,
                    "userId": s.player.uid,
                    "characterId": s.player.cid,
                    "characterName": s.player.character_name,
                    "channel": "zone",
                    "message": s.text,
                    "serverTimestamp": s.ack["data"]["serverTimestamp"] if s.ack else None,
                },
            }
            assert frame == expected_frame, (conn.label, frame, expected_frame)
            assert is_int(frame["offset"]), (conn.label, frame)
            # One message, one offset, whichever process delivered it.
            assert offset_of.setdefault(s.id, frame["offset"]) == frame["offset"], (
                conn.label,
                frame,
                offset_of[s.id],
            )
            offsets.append(frame["offset"])
        not_increasing = [(a, b) for a, b in pairwise(offsets) if b <= a]
        assert not_increasing == [], (
            f"{conn.describe()}: offsets not increasing {not_increasing[:5]}"
        )
        assert all(start_offset < o < end_offset for o in offsets), (conn.label, offsets[:3])
        epochs = {frame.get("epoch") for frame in conn.messages}
        assert len(epochs) == 1 and all(isinstance(e, str) and e for e in epochs), epochs

    # --- one order everywhere ---
    # Each published message has its own offset, and together they fill the room's offsets
    # between the two barriers: nothing was published twice or skipped.
    assert len(set(offset_of.values())) == len(offset_of) == total, "offsets shared by messages"
    assert sorted(offset_of.values()) == list(range(start_offset + 1, end_offset)), (
        start_offset,
        end_offset,
        sorted(offset_of.values())[:5],
    )
    for one, other in combinations(conns, 2):
        ids_one = [f["data"]["id"] for f in one.messages]
        ids_other = [f["data"]["id"] for f in other.messages]
        common = set(ids_one) & set(ids_other)
        order_one = [i for i in ids_one if i in common]
        order_other = [i for i in ids_other if i in common]
        first_difference = next(
            (k for k, (a, b) in enumerate(zip(order_one, order_other, strict=True)) if a != b), None
        )
        assert first_difference is None, (
            f"{one.label} and {other.label} disagree on the order of their {len(common)} common "
            f"messages from position {first_difference}"
        )
