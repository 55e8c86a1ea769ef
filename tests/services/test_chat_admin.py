"""Chat moderation in the Django admin: search, filter, delete for everyone, mute, word list."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from characters.models import Character
from chat.models import ChatMessage, Mute, ProfanityWord
from chat.services import NewMessage, chat_messages_store, mute_until

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:chat_chatmessage_changelist"


@pytest.fixture
def moderator(client: Any) -> Any:
    call_command("seed_demo", verbosity=0)
    client.login(username="gm", password="aeturnis-demo")
    return client


def store(text: str, username: str = "alice") -> int:
    character = Character.objects.get(owner__username=username)
    (message_id,) = chat_messages_store(
        messages=[
            NewMessage(
                channel="zone",
                sender_id=character.owner_id,
                character_id=character.pk,
                sender_name=character.name,
                text=text,
                filtered=False,
                sent_ms=1,
                zone_id=character.zone_id,
            )
        ]
    )
    return message_id


def test_messages_can_be_searched_and_filtered(moderator: Any) -> None:
    store("find the needle here")
    store("nothing to see", "bob")
    found = moderator.get(reverse(CHANGELIST), {"q": "needle"})
    assert found.status_code == 200
    assert b"find the needle here" in found.content and b"nothing to see" not in found.content
    by_channel = moderator.get(reverse(CHANGELIST), {"channel__exact": "global"})
    assert b"find the needle" not in by_channel.content


def test_delete_for_everyone_soft_deletes(moderator: Any) -> None:
    keep, gone = store("keep me"), store("delete me")
    response = moderator.post(
        reverse(CHANGELIST),
        {"action": "delete_for_everyone", "_selected_action": [gone]},
        follow=True,
    )
    assert response.status_code == 200
    assert ChatMessage.objects.get(pk=gone).deleted_at is not None
    assert ChatMessage.objects.get(pk=keep).deleted_at is None
    visible = moderator.get(reverse(CHANGELIST), {"deleted": "no"})
    assert b"keep me" in visible.content and b"delete me" not in visible.content


def test_mute_senders_action_mutes_for_an_hour(moderator: Any) -> None:
    message_id = store("spam spam", "bob")
    moderator.post(
        reverse(CHANGELIST), {"action": "mute_senders", "_selected_action": [message_id]}
    )
    bob = Character.objects.get(name="Bob").owner
    assert Mute.objects.filter(user=bob).count() == 1
    assert mute_until(bob.pk) is not None


def test_words_are_stored_normalised_from_the_admin(moderator: Any) -> None:
    response = moderator.post(reverse("admin:chat_profanityword_add"), {"word": "  GRÖBBLE "})
    assert response.status_code == 302
    assert ProfanityWord.objects.filter(word="grobble").exists()
