"""An Engine.IO long-polling client on the full ASGI application, in-process (no server)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import WS_TIMEOUT, access_for

SEP = "\x1e"
POLLING = "/socket.io/?EIO=4&transport=polling"


@dataclass
class Answer:
    status: int | None  # None: the application sent nothing (the client had gone away)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def packets(self) -> list[str]:
        return self.text.split(SEP)


async def http(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    gone: asyncio.Event | None = None,
) -> Answer:
    """One HTTP request to ``aeturnis.asgi.application``; ``gone`` set = the client left."""
    from aeturnis.asgi import application

    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ["127.0.0.1", 40000],
        "server": ["testserver", 80],
    }
    left = gone or asyncio.Event()
    sent_body = False
    answer = Answer(None)

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {
                bytes(k).decode().lower(): bytes(v).decode() for k, v in message["headers"]
            }
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await application(scope, receive, send)
    return answer


def payload(*packets: str | bytes) -> bytes:
    """A POST body: text packets and ``b<base64>`` binary messages joined by ``\\x1e``."""
    parts = ["b" + base64.b64encode(p).decode() if isinstance(p, bytes) else p for p in packets]
    return SEP.join(parts).encode()


class Poller:
    """One polling session: ``open``, then ``get`` / ``post``."""

    def __init__(self) -> None:
        self.sid = ""
        self.opened: dict[str, Any] = {}

    @property
    def path(self) -> str:
        return f"{POLLING}&sid={self.sid}"

    async def open(self, extra: str = "", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
        answer = await http("GET", POLLING + extra, headers=headers)
        assert answer.status == 200, (answer.status, answer.body)
        assert answer.text.startswith("0{"), answer.text
        self.opened = json.loads(answer.text[1:])
        self.sid = self.opened["sid"]
        return self.opened

    async def get(self, timeout: float = WS_TIMEOUT) -> list[str]:
        answer = await asyncio.wait_for(http("GET", self.path), timeout)
        assert answer.status == 200, (answer.status, answer.body)
        return answer.packets

    def get_later(self) -> asyncio.Task[Answer]:
        return asyncio.get_running_loop().create_task(http("GET", self.path))

    async def post(self, *packets: str | bytes) -> Answer:
        return await asyncio.wait_for(http("POST", self.path, body=payload(*packets)), WS_TIMEOUT)

    async def post_ok(self, *packets: str | bytes) -> None:
        answer = await self.post(*packets)
        assert (answer.status, answer.body) == (200, b"ok"), (answer.status, answer.body)

    async def receive(self, count: int) -> list[str]:
        """The next ``count`` packets, over as many GETs as it takes (pings answered)."""
        received: list[str] = []
        while len(received) < count:
            for packet in await self.get():
                if packet == "2":
                    await self.post_ok("3")
                elif packet != "6":
                    received.append(packet)
        return received

    async def connect(self, user: Any) -> tuple[Any, Any]:
        """Open, CONNECT with the auth object; the CONNECT answer and ``sync:initial``."""
        await self.open()
        await self.post_ok("40" + json.dumps({"token": access_for(user)}))
        answer, initial = await self.receive(2)
        assert answer.startswith("40{"), answer
        assert initial.startswith('42["sync:initial"'), initial
        return json.loads(answer[2:]), json.loads(initial[2:])[1]
