"""Every frame a consumer test receives on ``/ws/game/`` or ``/socket.io/`` is checked against
the AsyncAPI document (``tests/conformance.py``): the document cannot drift from what the server
sends."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from tests.conformance import NATIVE_PATH, SOCKETIO_PATH, Conversation


def _conversation(comm: WebsocketCommunicator) -> Conversation | None:
    path = str(comm.scope.get("path", ""))
    if not path.startswith((NATIVE_PATH, SOCKETIO_PATH)):
        return None
    found: Conversation | None = getattr(comm, "_conformance", None)
    if found is None:
        query = bytes(comm.scope.get("query_string", b"")).decode("latin-1")
        upgraded = any(part.startswith("sid=") for part in query.split("&"))
        found = Conversation(socketio=path.startswith(SOCKETIO_PATH), upgraded=upgraded)
        comm._conformance = found  # type: ignore[attr-defined]
    return found


@pytest.fixture(autouse=True)
def frames_match_the_asyncapi_document(monkeypatch: pytest.MonkeyPatch) -> None:
    send_input = WebsocketCommunicator.send_input
    receive_output = WebsocketCommunicator.receive_output

    async def sending(self: WebsocketCommunicator, message: dict[str, Any]) -> None:
        conversation = _conversation(self)
        if conversation is not None and message.get("type") == "websocket.receive":
            conversation.sent(message.get("text"))
        await send_input(self, message)

    async def receiving(self: WebsocketCommunicator, timeout: float = 1) -> dict[str, Any]:
        output: dict[str, Any] = await receive_output(self, timeout)
        conversation = _conversation(self)
        if (
            conversation is not None
            and output.get("type") == "websocket.send"
            and output.get("text") is not None
        ):
            conversation.received_text(output["text"])
        return output

    monkeypatch.setattr(WebsocketCommunicator, "send_input", sending)
    monkeypatch.setattr(WebsocketCommunicator, "receive_output", receiving)
