"""Operator actions reach live connections: ban, kick, mute, notify, announcements, stats."""

from __future__ import annotations

import asyncio
import json
from io import StringIO
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from realtime.models import Announcement
from tests.conftest import WS_TIMEOUT, access_for, connect, connect_as
from tests.consumers.world import next_event, no_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def people(make_user: Any) -> dict[str, Any]:
    player = await database_sync_to_async(make_user)("player")
    # Superuser like the demo moderator: the admin checks model permissions.
    staff = await database_sync_to_async(make_user)("moderator", is_staff=True, is_superuser=True)
    return {"player": player, "staff": staff}


def api(staff: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_for(staff)}")
    response = client.post(path, body, format="json") if body is not None else client.get(path)
    assert response.status_code == 200, response.content
    return response.json()["data"]


async def closed_with(comm: Any) -> tuple[int, str]:
    while True:
        output = await comm.receive_output(timeout=WS_TIMEOUT)
        if output["type"] == "websocket.close":
            return output["code"], output["reason"]


async def test_a_ban_closes_live_connections_and_refuses_new_ones(people: Any) -> None:
    comm, _ = await connect_as(people["player"])
    await database_sync_to_async(api)(
        people["staff"], "/api/realtime/ban", {"userId": people["player"].pk, "reason": "cheating"}
    )
    kicked = await next_event(comm, "session:kicked")
    assert kicked == {"reason": "cheating"}
    assert await closed_with(comm) == (4003, "USER_BANNED")
    again = await connect(f"/ws/game/?token={access_for(people['player'])}")
    refused = await again.receive_json_from(timeout=WS_TIMEOUT)
    assert refused["event"] == "connect_error" and refused["data"]["code"] == "USER_BANNED"
    await database_sync_to_async(api)(
        people["staff"], "/api/realtime/unban", {"userId": people["player"].pk}
    )
    back, initial = await connect_as(people["player"])
    assert initial["userId"] == str(people["player"].pk)
    await back.disconnect()


async def test_kick_closes_every_connection_of_the_user(people: Any) -> None:
    first, _ = await connect_as(people["player"])
    second, _ = await connect_as(people["player"])
    await database_sync_to_async(api)(
        people["staff"], "/api/realtime/kick", {"userId": people["player"].pk, "reason": "spam"}
    )
    for comm in (first, second):
        assert (await next_event(comm, "session:kicked"))["reason"] == "spam"
        assert await closed_with(comm) == (4003, "KICKED")


async def test_notify_sends_the_event_to_the_users(people: Any) -> None:
    comm, _ = await connect_as(people["player"])
    data = await database_sync_to_async(api)(
        people["staff"],
        "/api/realtime/notify",
        {"userIds": [people["player"].pk], "event": "quest:update", "data": {"step": 2}},
    )
    assert data["users"] == 1
    assert await next_event(comm, "quest:update") == {"step": 2}
    await comm.disconnect()


@override_settings(AETURNIS_PRESENCE_REFRESH_S=0.5)  # with Redis, processes report this often
async def test_stats_count_this_processes_clients_and_rooms(people: Any) -> None:
    one, _ = await connect_as(people["player"])
    two, _ = await connect_as(people["staff"])
    for _ in range(40):
        stats = await database_sync_to_async(api)(people["staff"], "/api/realtime/stats")
        if stats["connectedClients"] == 2:
            break
        await asyncio.sleep(0.1)
    assert stats["connectedClients"] == 2 and stats["connectedUsers"] == 2
    rooms = {r["roomName"]: r["clientCount"] for r in stats["rooms"]}
    assert rooms["global:chat"] == 2 and rooms[f"user:{people['player'].pk}"] == 1
    assert len(stats["processes"]) == 1 and stats["uptime"] >= 0
    await one.disconnect()
    await two.disconnect()


async def test_presence_api_shows_status_and_recent_activity(people: Any) -> None:
    comm, _ = await connect_as(people["player"])
    await comm.send_json_to({"event": "presence:get", "data": {"userIds": ["1"]}})
    await comm.receive_json_from(timeout=WS_TIMEOUT)
    data = await database_sync_to_async(api)(
        people["staff"], f"/api/realtime/presence/{people['player'].pk}"
    )
    assert data["status"] == "online"
    events = [a["event"] for a in data["recentActivity"]]
    assert events[:2] == ["presence:get", "connect"]
    await comm.disconnect()


async def test_an_announcement_saved_in_the_admin_reaches_everyone(
    people: Any, client: Any
) -> None:
    comm, _ = await connect_as(people["player"])

    def post() -> Any:
        client.force_login(people["staff"])
        return client.post(
            "/admin/realtime/announcement/add/",
            {"message": "Server restart soon", "priority": "high"},
        )

    response = await database_sync_to_async(post)()
    assert response.status_code == 302
    got = await next_event(comm, "system:announcement")
    assert got["message"] == "Server restart soon" and got["priority"] == "high"
    await no_event(comm, "system:announcement")  # sent once
    assert await database_sync_to_async(Announcement.objects.count)() == 1
    await comm.disconnect()


@override_settings(AETURNIS_PRESENCE_REFRESH_S=0.5)  # with Redis, processes report this often
async def test_online_now_lists_connections_users_and_rooms_per_process(
    people: Any, client: Any
) -> None:
    one, _ = await connect_as(people["player"])
    two, _ = await connect_as(people["player"])

    def page() -> str:
        client.force_login(people["staff"])
        response = client.get("/admin/realtime/online/")
        assert response.status_code == 200
        return str(response.content.decode())

    html = ""
    for _ in range(40):
        html = await database_sync_to_async(page)()
        if '<strong id="online-connections">2</strong>' in html:
            break
        await asyncio.sleep(0.1)
    assert '<strong id="online-connections">2</strong>' in html
    assert '<strong id="online-users">1</strong>' in html
    assert '<strong id="online-processes">1</strong>' in html
    assert f"<tr><td>user:{people['player'].pk}</td><td>2</td></tr>" in html
    assert "<tr><td>global:chat</td><td>2</td></tr>" in html
    await one.disconnect()
    await two.disconnect()


async def test_admin_actions_kick_and_ban_users(people: Any, client: Any) -> None:
    from realtime.auth.bans import is_banned

    comm, _ = await connect_as(people["player"])

    def act(action: str) -> Any:
        client.force_login(people["staff"])
        return client.post(
            "/admin/auth/user/", {"action": action, "_selected_action": [people["player"].pk]}
        )

    await database_sync_to_async(act)("kick_users")
    assert await closed_with(comm) == (4003, "KICKED")
    await database_sync_to_async(act)("ban_users")
    assert await database_sync_to_async(is_banned)(people["player"].pk)
    await database_sync_to_async(act)("unban_users")
    assert not await database_sync_to_async(is_banned)(people["player"].pk)


@pytest.mark.skipif(not settings.REDIS_URL, reason="the commands reach servers through Redis")
@override_settings(AETURNIS_PRESENCE_REFRESH_S=0.5)
async def test_the_operator_commands_reach_live_connections(people: Any) -> None:
    comm, _ = await connect_as(people["player"])
    uid = str(people["player"].pk)
    await database_sync_to_async(call_command)("notify", "quest:update", uid, "--data", '{"n": 1}')
    assert await next_event(comm, "quest:update") == {"n": 1}
    await database_sync_to_async(call_command)("announce", "Hello all", "--priority", "low")
    assert (await next_event(comm, "system:announcement"))["message"] == "Hello all"
    recorded = await database_sync_to_async(Announcement.objects.get)()
    assert (recorded.message, recorded.priority, recorded.sent_by_id) == ("Hello all", "low", None)
    out = StringIO()
    for _ in range(40):
        out = StringIO()
        await database_sync_to_async(call_command)("realtime_stats", stdout=out)
        if json.loads(out.getvalue())["connectedClients"] == 1:
            break
        await asyncio.sleep(0.1)
    assert json.loads(out.getvalue())["connectedClients"] == 1
    await database_sync_to_async(call_command)("kick", uid, "--reason", "bye")
    assert (await next_event(comm, "session:kicked"))["reason"] == "bye"
    assert await closed_with(comm) == (4003, "KICKED")
