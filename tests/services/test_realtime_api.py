"""The admin HTTP API (PROTOCOL.md §7): permissions, envelope, validation, effects, schema."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from rest_framework.test import APIClient

from chat.models import Mute
from realtime.auth.bans import is_banned
from realtime.models import Ban
from realtime.protocol.base import encode_data
from realtime.protocol.codecs import room_event_frame_bytes
from tests.conftest import access_for

pytestmark = pytest.mark.django_db

ENDPOINTS: list[tuple[str, str, dict[str, Any]]] = [
    ("get", "/api/realtime/stats", {}),
    ("post", "/api/realtime/announcement", {"message": "Maintenance at noon"}),
    ("post", "/api/realtime/notify", {"userIds": [1], "event": "quest:update", "data": {}}),
    ("post", "/api/realtime/kick", {"userId": 1, "reason": "spam"}),
    ("post", "/api/realtime/mute", {"userId": 1, "minutes": 5, "reason": "spam"}),
    ("post", "/api/realtime/ban", {"userId": 1, "reason": "cheating"}),
    ("post", "/api/realtime/unban", {"userId": 1}),
    ("get", "/api/realtime/presence/1", {}),
]


def call(client: APIClient, method: str, path: str, body: dict[str, Any]) -> Any:
    if method == "get":
        return client.get(path)
    return client.post(path, body, format="json")


@pytest.fixture
def people(make_user: Any) -> dict[str, Any]:
    player = make_user("player")
    staff = make_user("moderator", is_staff=True)
    return {"player": player, "staff": staff}


def as_user(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_for(user)}")
    return client


def with_ids(body: dict[str, Any], user_id: int) -> dict[str, Any]:
    body = dict(body)
    if "userId" in body:
        body["userId"] = user_id
    if "userIds" in body:
        body["userIds"] = [user_id]
    return body


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_anonymous_callers_get_401_in_the_envelope(
    method: str, path: str, body: dict[str, Any]
) -> None:
    response = call(APIClient(), method, path, body)
    assert response.status_code == 401
    assert response.json()["success"] is False and response.json()["error"]["code"]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_non_staff_get_403(people: Any, method: str, path: str, body: dict[str, Any]) -> None:
    response = call(as_user(people["player"]), method, path, body)
    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "error": {"code": "FORBIDDEN", "message": "Staff only"},
    }


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_staff_get_the_success_envelope(
    people: Any, method: str, path: str, body: dict[str, Any]
) -> None:
    player = people["player"]
    path = path.replace("/presence/1", f"/presence/{player.pk}")
    response = call(as_user(people["staff"]), method, path, with_ids(body, player.pk))
    assert response.status_code == 200, response.content
    payload = response.json()
    assert payload["success"] is True and "data" in payload
    assert isinstance(payload["meta"]["timestamp"], int) and payload["meta"]["version"]


def test_a_staff_session_in_the_admin_works_too(people: Any, client: Any) -> None:
    client.force_login(people["staff"])
    assert client.get("/api/realtime/stats").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/realtime/announcement", {"message": ""}, "message"),
        ("/api/realtime/announcement", {"message": "x" * 501}, "message"),
        ("/api/realtime/announcement", {"message": "hi", "priority": "urgent"}, "priority"),
        ("/api/realtime/notify", {"userIds": [1], "event": "sync:initial"}, "event"),
        ("/api/realtime/notify", {"userIds": [1], "event": "error"}, "event"),
        ("/api/realtime/notify", {"userIds": [1], "event": "NoColon"}, "event"),
        ("/api/realtime/notify", {"userIds": [], "event": "a:b"}, "userIds"),
        ("/api/realtime/mute", {"userId": 1, "minutes": 0}, "minutes"),
        ("/api/realtime/kick", {"reason": "x"}, "userId"),
    ],
)
def test_invalid_bodies_get_400_with_details(
    people: Any, path: str, body: dict[str, Any], field: str
) -> None:
    response = as_user(people["staff"]).post(path, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]


def test_unknown_users_are_404(people: Any) -> None:
    response = as_user(people["staff"]).post(
        "/api/realtime/kick", {"userId": 999999, "reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "USER_NOT_FOUND"


def test_the_presence_of_an_unknown_user_is_404(people: Any) -> None:
    response = as_user(people["staff"]).get("/api/realtime/presence/999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "USER_NOT_FOUND"


def test_mute_ban_and_unban_are_stored(people: Any) -> None:
    staff, player = as_user(people["staff"]), people["player"]
    muted = staff.post(
        "/api/realtime/mute", {"userId": player.pk, "minutes": 30, "reason": "spam"}, format="json"
    )
    assert isinstance(muted.json()["data"]["until"], int)
    assert Mute.objects.get(user=player).created_by == people["staff"]
    banned = staff.post(
        "/api/realtime/ban", {"userId": player.pk, "reason": "cheat", "minutes": 60}, format="json"
    )
    assert banned.json()["data"]["until"] is not None and is_banned(player.pk)
    staff.post("/api/realtime/ban", {"userId": player.pk, "reason": "again"}, format="json")
    assert Ban.objects.filter(user=player, until__isnull=True).exists()
    lifted = staff.post("/api/realtime/unban", {"userId": player.pk}, format="json")
    assert lifted.json()["data"]["lifted"] == 2 and not is_banned(player.pk)


def test_presence_of_a_user_nobody_saw_is_offline(people: Any) -> None:
    response = as_user(people["staff"]).get(f"/api/realtime/presence/{people['player'].pk}")
    data = response.json()["data"]
    assert data["status"] == "offline" and data["recentActivity"] == []


def test_the_openapi_schema_is_valid_and_lists_every_endpoint() -> None:
    out = StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )
    paths = json.loads(out.getvalue())["paths"]
    for _, path, _ in ENDPOINTS:
        assert path.replace("/presence/1", "/presence/{user_id}") in paths


def test_swagger_ui_is_served_from_local_assets(client: Any) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert b"cdn." not in page.content and b"swagger-ui" in page.content


@override_settings(REDIS_URL="")
@pytest.mark.parametrize("command", [["notify", "a:b", "1"], ["kick", "1"], ["realtime_stats"]])
def test_operator_commands_explain_that_they_need_redis(command: list[str]) -> None:
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command(*command)


def padded_data(event: str, user_id: int, frame_bytes: int) -> dict[str, Any]:
    """Notify data whose frame to ``user_id`` is sized exactly ``frame_bytes`` (margin included)."""
    room = f"user:{user_id}"
    empty = room_event_frame_bytes(event, encode_data({"pad": ""}), room)
    data = {"pad": "é" * ((frame_bytes - empty) // 2) + "x" * ((frame_bytes - empty) % 2)}
    assert room_event_frame_bytes(event, encode_data(data), room) == frame_bytes
    return data


@pytest.mark.parametrize("limit", [None, 4096], ids=["default-64KiB", "setting-4096"])
def test_notify_refuses_data_whose_frame_would_exceed_the_outbound_frame_limit(
    people: Any, limit: int | None
) -> None:
    staff, user_id = as_user(people["staff"]), people["player"].pk
    with override_settings(
        AETURNIS_MAX_OUTBOUND_FRAME_BYTES=limit or settings.AETURNIS_MAX_OUTBOUND_FRAME_BYTES
    ):
        limit = settings.AETURNIS_MAX_OUTBOUND_FRAME_BYTES
        body = {"userIds": [user_id], "event": "quest:update"}
        over = staff.post(
            "/api/realtime/notify",
            {**body, "data": padded_data("quest:update", user_id, limit + 1)},
            format="json",
        )
        under = staff.post(
            "/api/realtime/notify",
            {**body, "data": padded_data("quest:update", user_id, limit)},
            format="json",
        )
    assert over.status_code == 400
    error = over.json()["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE" and str(limit) in error["message"]
    assert error["details"] == {"size": limit + 1, "limit": limit}
    assert under.status_code == 200 and under.json()["data"]["users"] == 1


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth):
        data = {"a": data}
    return data


@pytest.mark.parametrize(
    "data", [nested(300), {"n": 2**70}], ids=["deeper-than-orjson-encodes", "int-over-64-bits"]
)
def test_notify_refuses_data_that_cannot_be_encoded(people: Any, data: dict[str, Any]) -> None:
    response = as_user(people["staff"]).post(
        "/api/realtime/notify",
        {"userIds": [people["player"].pk], "event": "quest:update", "data": data},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_DATA"


# The commands refuse before they reach Redis: any URL will do.
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_notify_command_refuses_data_over_the_outbound_frame_limit(people: Any) -> None:
    user_id = people["player"].pk
    limit = settings.AETURNIS_MAX_OUTBOUND_FRAME_BYTES
    data = json.dumps(padded_data("quest:update", user_id, limit + 1))
    with pytest.raises(CommandError, match=f"limit is {limit} bytes"):
        call_command("notify", "quest:update", str(user_id), "--data", data)


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_kick_command_refuses_a_reason_longer_than_the_api_allows(people: Any) -> None:
    with pytest.raises(CommandError, match="at most 500 characters"):
        call_command("kick", str(people["player"].pk), "--reason", "x" * 501)
