"""Bench world for ``bench/fanout.py``: Z zones of P characters, and an access token for each.

    DATABASE_URL=... SECRET_KEY=... .venv/bin/python bench/fanout_seed.py --zones 10 --per-zone 100

Run with the served project on ``sys.path`` (``fanout.py`` runs it with ``cwd`` and
``PYTHONPATH`` set to ``--app-dir``) and the same ``SECRET_KEY`` as the server, so the tokens
verify there. Creates (or resets) zones ``fanout_01`` … and users ``fanout0001`` … with one
character each (``Fanout0001`` …, P per zone, at the zone's spawn), without a usable password:
nobody logs in over HTTP (PBKDF2 costs ~270 ms a login); the tokens are minted here with
simplejwt's ``AccessToken.for_user``. Chat messages of earlier runs by these users are deleted,
so every run writes into a table of the same size. Prints one JSON object:
``{"clients": [{userId, characterId, characterName, zone, token}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aeturnis.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import transaction  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402

from characters.models import Character, GuildMembership, Zone  # noqa: E402
from chat.models import ChatMessage  # noqa: E402

USER_PREFIX = "fanout"
ZONE_PREFIX = "fanout_"


def seed(zones: int, per_zone: int) -> list[dict[str, str]]:
    user_model = get_user_model()
    n = zones * per_zone
    names = [f"{USER_PREFIX}{i:04d}" for i in range(1, n + 1)]
    with transaction.atomic():
        zone_rows = []
        for z in range(1, zones + 1):
            zone, _ = Zone.objects.update_or_create(
                key=f"{ZONE_PREFIX}{z:02d}",
                defaults={
                    "name": f"Fan-out {z:02d}",
                    "min_x": -500,
                    "max_x": 500,
                    "min_y": -500,
                    "max_y": 500,
                    "spawn_x": 0,
                    "spawn_y": 0,
                    "spawn_z": 0,
                },
            )
            zone_rows.append(zone)
        existing = {u.username: u for u in user_model.objects.filter(username__in=names)}
        unusable = make_password(None)
        user_model.objects.bulk_create(
            [
                user_model(username=name, password=unusable)
                for name in names
                if name not in existing
            ],
            batch_size=500,
        )
        users = {u.username: u for u in user_model.objects.filter(username__in=names)}
        user_model.objects.filter(username__in=names).update(is_active=True)
        chars = {c.owner_id: c for c in Character.objects.filter(owner__username__in=names)}
        missing = []
        for i, name in enumerate(names):
            zone = zone_rows[i // per_zone]
            user = users[name]
            if user.pk not in chars:
                missing.append(
                    Character(owner=user, name=name.capitalize(), zone=zone, pos_x=0, pos_y=0)
                )
        Character.objects.bulk_create(missing, batch_size=500)
        chars = {c.owner_id: c for c in Character.objects.filter(owner__username__in=names)}
        for i, name in enumerate(names):  # back to its zone and spawn (a run may move them)
            c = chars[users[name].pk]
            c.zone = zone_rows[i // per_zone]
            c.pos_x = c.pos_y = c.pos_z = c.direction = 0.0
        Character.objects.bulk_update(
            list(chars.values()), ["zone", "pos_x", "pos_y", "pos_z", "direction"], batch_size=500
        )
        GuildMembership.objects.filter(character__in=list(chars.values())).delete()
        ChatMessage.objects.filter(sender__username__in=names).delete()
    clients = []
    for i, name in enumerate(names):
        user = users[name]
        c = chars[user.pk]
        clients.append(
            {
                "userId": str(user.pk),
                "characterId": str(c.pk),
                "characterName": c.name,
                "zone": zone_rows[i // per_zone].key,
                "token": str(AccessToken.for_user(user)),
            }
        )
    return clients


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--zones", type=int, default=10)
    p.add_argument("--per-zone", type=int, default=100)
    a = p.parse_args()
    json.dump({"clients": seed(a.zones, a.per_zone)}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
