"""The /play/ page and the two read-only views it reads what the protocol does not carry from."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import access_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def demo() -> None:
    call_command("seed_demo", stdout=StringIO())


def as_user(username: str) -> APIClient:
    client = APIClient()
    user = get_user_model().objects.get(username=username)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_for(user)}")
    return client


def test_the_page_loads_its_modules_and_the_socketio_build_from_static_files() -> None:
    page = Client().get("/play/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'type="module" src="/static/play/js/main.js"' in html
    assert 'data-sio-library="/static/play/lib/socket.io.esm.min.js"' in html
    assert "cdn" not in html.lower()


@pytest.mark.parametrize("path", ["/play/api/account/", "/play/api/zones/meadow_path/positions/"])
def test_the_views_need_a_token(demo: None, path: str) -> None:
    assert APIClient().get(path).status_code == 401


def test_account_lists_the_callers_character_with_its_guild_and_the_zone_map(demo: None) -> None:
    body = as_user("alice").get("/play/api/account/").json()

    assert body["user"]["username"] == "alice"
    (alice,) = body["characters"]
    assert (alice["name"], alice["zone"], alice["level"]) == ("Alice", "starting_village", 3)
    assert alice["guild"]["name"] == "Dawnguard"
    assert [m["name"] for m in alice["guild"]["members"]] == ["Alice", "Bob"]
    assert all(m["userId"].isdigit() for m in alice["guild"]["members"])
    village = body["zones"]["starting_village"]
    assert village["bounds"] == {"minX": -500, "maxX": 500, "minY": -500, "maxY": 500}
    assert village["neighbours"] == ["meadow_path"]
    assert body["zones"]["meadow_path"]["neighbours"] == ["dark_forest", "starting_village"]


def test_a_character_without_a_guild_has_none(demo: None) -> None:
    (carol,) = as_user("carol").get("/play/api/account/").json()["characters"]
    assert carol["guild"] is None


def test_positions_lists_the_characters_stored_in_a_zone(demo: None) -> None:
    body = as_user("bob").get("/play/api/zones/starting_village/positions/").json()

    assert body["zone"] == "starting_village"
    assert len(body["characters"]) == 4
    assert {tuple(c["position"].values()) for c in body["characters"]} == {(0, 0, 0, 0)}
    empty = as_user("bob").get("/play/api/zones/crystal_caves/positions/").json()
    assert empty["characters"] == []
