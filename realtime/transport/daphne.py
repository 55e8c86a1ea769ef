"""Make daphne honour the ASGI ``websocket.close`` message in full.

daphne 4.2 passes only the code to autobahn's ``sendClose``, which (a) drops the ``reason``
(ASGI websocket spec 2.3) and (b) refuses any code but 1000 and 3000-4999, so 1009 and 1012
raise inside daphne and the client never gets a close frame. The contract needs both
(PROTOCOL.md §3: every server-initiated close carries its error code as reason). This wraps
daphne's reply handler so a close after accept writes the close frame itself, with code and
reason; everything else is daphne's own code path. Applied once, from ``aeturnis.asgi``.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

MAX_REASON_BYTES = 123  # RFC 6455: 125-byte control frame payload minus the 2-byte code


def encode_reason(reason: Any) -> bytes:
    raw = str(reason or "").encode("utf-8")[:MAX_REASON_BYTES]
    # Never cut a multi-byte character in half.
    return raw.decode("utf-8", "ignore").encode("utf-8")


def patch_daphne() -> bool:
    """Install the wrapper; returns False when daphne is not installed (e.g. under uvicorn)."""
    try:  # imported here: daphne is optional (uvicorn deployments need not install it)
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return False
    if getattr(WebSocketProtocol, "_aeturnis_close_patch", False):
        return True
    original = WebSocketProtocol.handle_reply

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state == self.STATE_OPEN:
            code = int(message.get("code") or 1000)
            self.sendCloseFrame(
                code=code, reasonUtf8=encode_reason(message.get("reason")), isReply=False
            )
            return
        original(self, message)

    WebSocketProtocol.handle_reply = handle_reply
    WebSocketProtocol._aeturnis_close_patch = True
    return True
