"""Seed the profanity word list with ``chat.rules.DEFAULT_WORDS`` (moderators edit it after)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

from chat.rules import DEFAULT_WORDS, normalise_word


def seed(apps: Any, schema_editor: Any) -> None:
    word_model = apps.get_model("chat", "ProfanityWord")
    for word in DEFAULT_WORDS:
        word_model.objects.get_or_create(word=normalise_word(word))


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
