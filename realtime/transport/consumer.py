"""The base of our WebSocket consumers: Channels' ``AsyncConsumer`` without a channel layer.

Our connections get no channel-layer channel (rooms go through the hub), so the only source of
messages is the server's ``receive``. Channels reads it through ``await_many_dispatch``: a
separate task per connection, and per message a new task plus an ``asyncio.wait`` (a set, a
future, callbacks, a copied context). ``DirectConsumer`` awaits ``receive`` itself, in the
connection's own task: the same order (one message is dispatched before the next is read),
less CPU per message and ~1.3 KB less per idle connection. Channels' per-message
``aclose_old_connections()`` thread hop is skipped too: a consumer never touches the database
itself, and every database call goes through ``realtime.core.db.db``, which manages the ORM
thread's connection.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

NO_LAYER = "__none__"  # connections get no channel-layer channel: rooms go through the hub


class DirectConsumer(AsyncConsumer):  # type: ignore[misc]
    channel_layer_alias = NO_LAYER
    channel_layer = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        dispatch = self.dispatch
        try:
            while True:
                await dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)
