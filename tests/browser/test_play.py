"""The /play/ page in a real browser against real servers: moving, chat, whispers and blocks,
a fight, and a server restart in the middle of play (issue #18)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Player, transport_params
from tests.e2e.conftest import (
    STOP_GRACE_S,
    ServerPool,
    connect_authenticated,
    logout,
    obtain_tokens,
    recv_event,
    requires_redis_and_postgres,
    run_manage,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.redis,
    requires_redis_and_postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("demo_world"),
]

# Where the character called `name` stands in this page's world, once its x is past `minX`
# (or, with a negative `minX`, below it).
OTHER_PAST_X = """([name, minX]) => {
  const others = [...(window.aeturnisPlay?.world.others.values() ?? [])];
  const pos = others.find((c) => c.name === name)?.pos;
  return pos && (minX >= 0 ? pos.x > minX : pos.x < minX) && pos;
}"""


async def walk(player: Player, key: str, seconds: float) -> None:
    """Hold a key down on the map for about ``seconds`` (the page walks while it is down)."""
    await player.page.focus("#map")
    await player.page.keyboard.down(key)
    await player.page.wait_for_timeout(seconds * 1000)
    await player.page.keyboard.up(key)


@pytest.mark.parametrize("transport", transport_params("native", "socketio-websocket", "socketio"))
async def test_two_players_see_each_other_move_and_chat(
    server_pool: ServerPool, players: dict[str, Player], transport: str
) -> None:
    server = server_pool.get("daphne")
    alice, bob = players["alice"], players["bob"]
    await alice.play(server, transport)
    await bob.play(server, transport)
    for player, other in ((alice, "Bob"), (bob, "Alice")):
        await expect(player.page.locator("#zone-panel")).to_contain_text(other)

    await walk(alice, "ArrowRight", 2.5)
    seen = await bob.wait_for(OTHER_PAST_X, ["Alice", 5])
    own = await alice.page.evaluate("window.aeturnisPlay.world.me.pos")
    assert seen["x"] <= own["x"] + 0.01, (seen, own)

    # Bob clicks left of himself on the map: he walks there, and Alice sees him go.
    box = await bob.page.locator("#map").bounding_box()
    assert box is not None
    await bob.page.mouse.click(box["x"] + box["width"] / 2 - 60, box["y"] + box["height"] / 2)
    await alice.wait_for(OTHER_PAST_X, ["Bob", -3])

    await bob.page.fill("#chat [name=message]", "typing…")
    await expect(alice.page.locator("#chat [data-typing]")).to_contain_text("Bob is typing")
    await alice.say("Hello Bob, nice to see you move")
    await bob.expect_chat("zone", "Hello Bob, nice to see you move")
    await bob.page.fill("#chat [name=message]", "")
    await bob.say("Hi Alice!", channel="global")
    await alice.expect_chat("global", "Hi Alice!")
    await alice.say("Dawnguard, assemble", channel="guild")
    await bob.expect_chat("guild", "Dawnguard, assemble")

    await alice.screenshot("world")
    await bob.screenshot("chat")
    assert await alice.page.evaluate("window.aeturnisPlay.world.snaps") == 0

    await alice.page.select_option("#status-form [name=status]", "lfg")
    await alice.page.fill("#status-form [name=message]", "looking for a duel")
    await alice.page.click("#status-form button[type=submit]")
    await expect(bob.page.locator("#zone-panel")).to_contain_text("lfg: looking for a duel")

    # Alice walks on to the meadow: her map follows, and Bob's village no longer holds her.
    await alice.page.click("#neighbours [data-zone=meadow_path]")
    await expect(alice.page.locator("#zone-name")).to_have_text("Meadow Path")
    await expect(alice.page.locator("#zone-panel li")).to_have_count(1)
    await expect(bob.page.locator("#zone-panel")).not_to_contain_text("Alice")
    await expect(bob.page.locator("#chat")).to_contain_text("Alice left for Meadow Path")
    await alice.screenshot("meadow")


async def test_emote_whisper_and_block(server_pool: ServerPool, players: dict[str, Player]) -> None:
    server = server_pool.get("daphne")
    alice, bob = players["alice"], players["bob"]
    await alice.play(server, "native")
    await bob.play(server, "native")

    await alice.page.select_option("#chat .chat-emote [name=emote]", "wave")
    await alice.page.fill("#chat .chat-emote [name=target]", "Bob")
    await alice.page.click("#chat .chat-emote button[type=submit]")
    await bob.expect_chat("zone", "* Alice waves at Bob")

    await alice.page.click("#chat [data-tab=whisper]")
    await alice.page.fill("#chat [name=to]", "Bob")
    await alice.say("psst, Bob", channel="whisper")
    await bob.page.click("#chat [data-tab=whisper]")
    await bob.expect_chat("whisper", "psst, Bob")
    await bob.screenshot("whisper")

    # Bob blocks Alice from her name on his whisper: her next whisper is refused.
    await bob.page.locator("#chat [data-list=whisper] .name", has_text="Alice").first.click()
    await bob.page.get_by_role("menuitem", name="Block").click()
    await expect(bob.page.locator("#chat [data-blocked]")).to_contain_text("Alice")
    await alice.page.fill("#chat [name=message]", "are you there?")
    await alice.page.press("#chat [name=message]", "Enter")
    await alice.expect_chat("whisper", "USER_BLOCKED")
    await expect(bob.page.locator("#chat [data-list=whisper]")).not_to_contain_text("are you there")


async def test_chat_history_scrolls_back_and_announcements_reach_the_page(
    server_pool: ServerPool, players: dict[str, Player]
) -> None:
    await store_global_history(45)
    server = server_pool.get("daphne")
    alice = players["alice"]
    await alice.play(server, "native")
    history = alice.page.locator("#chat [data-list=global]")

    await alice.page.click("#chat [data-tab=global]")
    await expect(history).to_contain_text("old message 44")
    await expect(history.locator("li")).to_have_count(30)  # one page
    await alice.page.click("#chat [data-older]")
    await expect(history.locator("li")).to_have_count(45)
    lines = await history.locator(".text").all_inner_texts()
    assert lines == [f"old message {n:02d}" for n in range(45)], lines
    await expect(alice.page.locator("#chat [data-older]")).to_be_hidden()

    done = await run_manage("announce", "Server restart in 5 minutes", "--priority", "high")
    assert done.returncode == 0, done.stderr
    await expect(alice.page.locator("#announcement")).to_contain_text("Server restart in 5 minutes")
    await alice.expect_chat("global", "📢 Server restart in 5 minutes")
    await alice.screenshot("history-and-announcement")


async def store_global_history(count: int) -> None:
    """``count`` global messages from Bob, a second apart, the newest a minute ago."""
    import time

    from channels.db import database_sync_to_async

    from characters.models import Character
    from chat.models import ChatMessage

    def store() -> None:
        bob = Character.objects.get(name="Bob")
        start = int(time.time() * 1000) - 60_000 - count * 1000
        ChatMessage.objects.bulk_create(
            ChatMessage(
                channel="global",
                sender_id=bob.owner_id,
                sender_character=bob,
                sender_name="Bob",
                text=f"old message {n:02d}",
                sent_ms=start + n * 1000,
            )
            for n in range(count)
        )

    await database_sync_to_async(store)()


async def test_goblin_fight_to_the_end(server_pool: ServerPool, players: dict[str, Player]) -> None:
    server = server_pool.get("daphne")
    alice = players["alice"]
    await alice.play(server, "native")
    combat = alice.page.locator("#combat")
    end = alice.page.locator("#end-screen")

    await alice.page.click("[data-fight=goblin]")
    await expect(combat).to_be_visible()
    await expect(combat.locator("[data-fighters]")).to_contain_text("Goblin")
    shot_taken = False
    for _ in range(60):
        # Alice's turn, or the end: the goblin plays its turns by itself.
        await alice.wait_for(
            """() => !document.querySelector("#end-screen").hidden
                   || document.querySelector("#combat").dataset.myTurn === "true" """
        )
        if await end.is_visible():
            break
        await expect(combat.locator("[data-timer]")).to_have_text(re.compile(r"^\d+ s$"))
        if not shot_taken:
            await alice.screenshot("combat")
            shot_taken = True
        turn = await alice.page.evaluate("window.aeturnisPlay.combat.state.turnNumber")
        await combat.locator("[data-action=attack]").click()
        await alice.wait_for(
            "(turn) => window.aeturnisPlay.combat.state.turnNumber > turn"
            " || !document.querySelector('#end-screen').hidden",
            turn,
        )
    await expect(end).to_be_visible()
    await alice.screenshot("end")
    assert await end.get_attribute("data-outcome") == "victory"
    await expect(end.locator("[data-rewards]")).to_contain_text("25 experience, 10 gold")
    await expect(combat.locator("[data-log]")).to_contain_text("Alice: attack Goblin")


async def carol_says(server: Any, *texts: str) -> None:
    """Carol, on a plain native client through ``server``, says ``texts`` in the village."""
    from channels.db import database_sync_to_async

    from characters.models import Character

    carol = await database_sync_to_async(lambda: Character.objects.get(name="Carol").pk)()
    token, _ = await obtain_tokens(server, "carol", "aeturnis-demo")
    async with connect_authenticated(server, token) as (ws, _):
        await send(ws, "character:select", {"characterId": str(carol)})
        await recv_event(ws, "character:selected", 10)
        for text in texts:
            await send(ws, "chat:message", {"channel": "zone", "message": text})
            await recv_event(ws, "chat:message_sent", 10)


async def send(ws: Any, event: str, data: Any) -> None:
    await ws.send(json.dumps({"event": event, "data": data}))


async def restart_while_carol_talks(
    servers: Any,
    port_server_factory: Any,
    players: dict[str, Player],
    transport: str,
    said: list[str],
    extra_env: dict[str, str] | None = None,
) -> None:
    """Alice and Bob play on one process; it restarts, and while the pages are away Carol says
    ``said`` through another process. Returns once both pages are online again."""
    first, other = servers("daphne", "daphne", extra_env=extra_env)
    alice, bob = players["alice"], players["bob"]
    await alice.play(first, transport)
    await bob.play(first, transport)
    # Each page hears the other in the zone, so both know where the zone's stream stands.
    await alice.say("before the restart")
    await bob.expect_chat("zone", "before the restart")
    await bob.say("me too")
    await alice.expect_chat("zone", "me too")

    first.send_signal(signal.SIGTERM)
    for player in (alice, bob):
        await expect(player.page.locator("#connection")).to_have_attribute(
            "data-state", "reconnecting"
        )
    assert await asyncio.to_thread(first.wait_exit, STOP_GRACE_S) is not None
    await alice.screenshot("reconnecting")
    await carol_says(other, *said)
    await port_server_factory("daphne", first.port, extra_env=extra_env)
    for player in (alice, bob):
        await player.expect_online()


@pytest.mark.parametrize("transport", transport_params("native", "socketio-websocket", "socketio"))
async def test_server_restart_during_play_recovers_missed_chat(
    server_factory: Any, port_server_factory: Any, players: dict[str, Player], transport: str
) -> None:
    missed = "you missed this while away"
    await restart_while_carol_talks(
        server_factory, port_server_factory, players, transport, [missed]
    )

    for player in players.values():
        recovery = player.page.locator("#connection [data-recovery]")
        await expect(recovery).to_have_attribute("data-recovered", "true")
        await expect(recovery).to_have_text("missed events recovered")
        await player.expect_chat("zone", missed)
        report = await player.page.evaluate("window.aeturnisPlay.lastResume")
        if transport == "native":
            assert report["via"] == "sync:resume", report
            assert report["rooms"]["zone:starting_village"]["recovered"] is True, report
        else:
            # Socket.IO connection state recovery: the connection came back with its rooms,
            # its character and the missed events (socket.recovered), no sync:resume needed.
            assert report["via"] == "connection state recovery", report
            assert await player.page.evaluate("window.aeturnisPlay.client.recoveredBySocketIo")
        lines = await player.page.locator("#chat [data-list=zone] li").all_inner_texts()
        assert sum(missed in line for line in lines) == 1, lines
    # Playing on after the recovery: what one says, the other hears once.
    await players["alice"].say("after the recovery")
    await players["bob"].expect_chat("zone", "after the recovery")
    await players["alice"].screenshot("recovered")


@pytest.mark.parametrize("transport", transport_params("native", "socketio"))
async def test_a_gap_older_than_the_resume_history_reloads_the_chat(
    server_factory: Any, port_server_factory: Any, players: dict[str, Player], transport: str
) -> None:
    # Each room keeps only its last event for resuming: three messages are a gap it cannot fill
    # (on Socket.IO neither connection state recovery nor the sync:resume after it can).
    said = ["first of three", "second of three", "third of three"]
    await restart_while_carol_talks(
        server_factory,
        port_server_factory,
        players,
        transport,
        said,
        extra_env={"AETURNIS_HISTORY_SIZE": "1"},
    )

    for player in players.values():
        recovery = player.page.locator("#connection [data-recovery]")
        await expect(recovery).to_have_attribute("data-recovered", "false")
        report = await player.page.evaluate("window.aeturnisPlay.lastResume")
        assert report["via"] == "sync:resume", report
        assert report["rooms"]["zone:starting_village"]["recovered"] is False, report
        # Not replayed, so the page reloaded the zone's history: every message is there once.
        for text in [*said, "before the restart", "me too"]:
            await player.expect_chat("zone", text)
        lines = await player.page.locator("#chat [data-list=zone] .text").all_inner_texts()
        assert [line for line in lines if line in said] == said, lines
    await players["bob"].screenshot("not-recovered")


TOKENS = "JSON.parse(sessionStorage.getItem('aeturnis.play.tokens'))"


async def test_token_is_refreshed_before_expiry_and_a_revoked_one_ends_the_session(
    server_factory: Any, players: dict[str, Player]
) -> None:
    (server,) = server_factory("daphne", extra_env={"AETURNIS_ACCESS_TOKEN_LIFETIME_S": "12"})
    alice = players["alice"]
    await alice.play(server, "native")
    first = await alice.page.evaluate(TOKENS)
    socket_id = await alice.page.evaluate("window.aeturnisPlay.client.socketId")

    # Past the first token's expiry the page is still on the same connection: it refreshed the
    # token over HTTP and handed it over with auth:refresh, so the server never closed it (4001).
    expires_at = await alice.page.evaluate(f"JSON.parse(atob({TOKENS}.access.split('.')[1])).exp")
    await alice.wait_for(f"() => Date.now() / 1000 > {expires_at} + 2")
    assert (await alice.page.evaluate(TOKENS))["access"] != first["access"]
    await alice.expect_online()
    assert await alice.page.evaluate("window.aeturnisPlay.client.socketId") == socket_id
    await alice.say("still here after my first token expired")

    # A logout elsewhere revokes the tokens: close 4001 TOKEN_REVOKED; the refresh token is
    # blacklisted too, so the page cannot get a new one and asks to log in again.
    tokens = await alice.page.evaluate(TOKENS)
    status, _ = await logout(server, tokens["access"], tokens["refresh"])
    assert status in (200, 204, 205), status
    await expect(alice.page.locator("#login")).to_be_visible()
    await alice.screenshot("logged-out")
