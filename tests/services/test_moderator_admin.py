"""The Django admin for moderators: the game's titles, readable times, original chat text,
announcements recorded whoever sent them, and the "Online now" page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from characters.models import Character
from chat.models import ChatMessage
from chat.services import NewMessage, chat_messages_store
from realtime.models import Announcement
from tests.conftest import access_for

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:chat_chatmessage_changelist"
# 2026-03-01 12:34:56 UTC and a day later, in epoch milliseconds.
EARLY_MS = int(datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC).timestamp() * 1000)
LATE_MS = EARLY_MS + 86_400_000


@pytest.fixture
def moderator(client: Any) -> Any:
    call_command("seed_demo", verbosity=0)
    client.login(username="gm", password="aeturnis-demo")
    return client


def store(text: str, sent_ms: int, original: str = "") -> int:
    character = Character.objects.get(owner__username="alice")
    (message_id,) = chat_messages_store(
        messages=[
            NewMessage(
                channel="zone",
                sender_id=character.owner_id,
                character_id=character.pk,
                sender_name=character.name,
                text=text,
                filtered=bool(original),
                sent_ms=sent_ms,
                zone_id=character.zone_id,
                original=original or text,
            )
        ]
    )
    return message_id


def test_the_admin_is_titled_for_the_game_and_links_online_now(moderator: Any) -> None:
    page = moderator.get(reverse("admin:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Aeturnis Realtime administration" in html and "Game administration" in html
    assert "<title>Game administration | Aeturnis Realtime admin</title>" in html
    assert reverse("realtime-online") in html
    assert "Django administration" not in html


def test_message_times_are_dates_and_still_sort(moderator: Any) -> None:
    store("the early one", EARLY_MS)
    store("the late one", LATE_MS)
    page = moderator.get(reverse(CHANGELIST)).content.decode()
    assert "2026-03-01 12:34:56 UTC" in page and "2026-03-02 12:34:56 UTC" in page
    assert str(EARLY_MS) not in page
    # "sent" is the 7th column; ordering by it orders by sent_ms.
    ascending = moderator.get(reverse(CHANGELIST), {"o": "7"}).content.decode()
    descending = moderator.get(reverse(CHANGELIST), {"o": "-7"}).content.decode()
    assert ascending.index("the early one") < ascending.index("the late one")
    assert descending.index("the late one") < descending.index("the early one")


def test_the_message_page_shows_the_original_text_to_moderators(moderator: Any) -> None:
    masked = store("what a ******* day", EARLY_MS, original="what a grobble day")
    clean = store("hello there", EARLY_MS)
    page = moderator.get(reverse("admin:chat_chatmessage_change", args=[masked])).content.decode()
    assert "what a grobble day" in page and "what a ******* day" in page
    assert "2026-03-01 12:34:56 UTC" in page
    assert ChatMessage.objects.get(pk=clean).original_text == ""
    shown = moderator.get(reverse("admin:chat_chatmessage_change", args=[clean])).content.decode()
    assert shown.count("hello there") >= 2  # the text, and "as typed" falls back to it
    found = moderator.get(reverse(CHANGELIST), {"q": "grobble"}).content.decode()
    assert "what a ******* day" in found  # moderators can search what was really typed


def test_online_now_is_for_staff_only(client: Any, make_user: Any) -> None:
    anonymous = client.get(reverse("realtime-online"))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(make_user("player"))
    assert client.get(reverse("realtime-online")).status_code == 302


def test_online_now_without_a_server_process_says_so(moderator: Any) -> None:
    page = moderator.get(reverse("realtime-online"))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "No server process is running" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another site


def test_an_api_announcement_is_recorded_with_its_sender(make_user: Any) -> None:
    staff = make_user("moderator", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_for(staff)}")
    response = client.post(
        "/api/realtime/announcement", {"message": "  Restart at noon ", "priority": "high"}
    )
    assert response.status_code == 200, response.content
    row = Announcement.objects.get()
    assert (row.message, row.priority, row.sent_by_id) == ("Restart at noon", "high", staff.pk)
    refused = client.post("/api/realtime/announcement", {"message": "   "})
    assert refused.status_code == 400 and Announcement.objects.count() == 1


def test_a_refused_command_announcement_records_nothing(settings: Any) -> None:
    from django.core.management.base import CommandError

    from realtime.ops.announcements import announcement_send

    with pytest.raises(ValueError, match="longer than 500"):
        announcement_send("x" * 501, sent_by_id=None)
    if not settings.REDIS_URL:
        with pytest.raises(CommandError):
            call_command("announce", "hello")
    assert Announcement.objects.count() == 0
