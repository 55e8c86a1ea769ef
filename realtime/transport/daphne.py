"""What daphne needs to serve this application as the contract says, applied once at import.

daphne is the default server; its behaviour is adjusted in a few places, each small and each
covered by tests against real daphne processes:

* **Close frames in full.** daphne passes only the code to autobahn's ``sendClose``, which
  drops the reason and refuses 1009 and 1012; a close after accept writes the close frame
  itself, with code and reason (PROTOCOL.md §3).
* **Frames written straight to the socket.** The scope of a WebSocket carries a ``RawSocket``
  (``scope["extensions"]["aeturnis.socket"]``): pre-built frame bytes go to the socket with one
  ``send`` when nothing is buffered ahead of them, instead of autobahn's framing and Twisted's
  deferred write (an ``epoll_ctl`` pair and a reactor round trip per write). Twisted's
  buffered bytes and its producer pause/resume make a slow client visible, so the session can
  bound it and close it 4008 (daphne's own ``send()`` never pushes back).
* **Arrival time.** Every received message carries the time its bytes reached the process
  (``"aeturnis.rx"``), so movement is judged on arrival (PROTOCOL.md §5.2); a WebSocket's
  messages wait in a lean ``Inbox`` instead of an ``asyncio.Queue``; once the connection is
  open, autobahn's copy of the opening handshake is dropped and its state at rest is read from
  the class, and autobahn's options are kept on the class instead of copied onto every
  connection (less held per connection); what
  autobahn pretty-prints and highlights for its debug lines at every connection is worked
  out only if a line is written.
* **Oversized bodies refused before they are read.** Twisted reads a whole request body and
  daphne hands it to the application in one piece; a request whose ``Content-Length`` is over
  ``AETURNIS_MAX_REQUEST_BYTES`` is answered 413 as soon as its headers are in.
* **No tokens in the access log.** daphne writes its access log straight to stdout, with the
  query string (``?token=``); each entry is redacted first.
"""

from __future__ import annotations

import asyncio
import logging
import pprint
import sys
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings

from realtime.core.constants import RAW_SOCKET
from realtime.core.logs import redact
from realtime.protocol.frames import close_reason_bytes
from realtime.transport.inbox import Inbox

logger = logging.getLogger(__name__)

_SOCKET_ERRORS = (BlockingIOError, InterruptedError)


def _buffered(transport: Any) -> int:
    """Bytes Twisted holds for ``transport`` that the kernel has not taken yet."""
    return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)


class _DrainProducer:
    """A push producer for a transport that has none: it only relays "drained"."""

    def __init__(self, socket: _DaphneSocket) -> None:
        self._socket = socket

    def pauseProducing(self) -> None:
        return None

    def resumeProducing(self) -> None:
        self._socket.drained()

    def stopProducing(self) -> None:
        return None


class _DaphneSocket:
    """The ``RawSocket`` of one daphne WebSocket (see ``realtime.connection.outbound``)."""

    __slots__ = ("_direct", "_drain", "_protocol")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._drain: Callable[[], None] | None = None
        self._direct: bool | None = None

    def _transport(self) -> Any:
        return self._protocol.transport

    def _can_send_directly(self, transport: Any) -> bool:
        if self._direct is None:
            from twisted.internet import tcp  # imported here: only daphne processes have Twisted

            # Only a plain TCP socket: under TLS the bytes must go through Twisted.
            self._direct = isinstance(transport, tcp.Connection) and not getattr(
                transport, "TLS", False
            )
        return self._direct

    def _open(self) -> bool:
        p = self._protocol
        t = p.transport
        return bool(
            p.state == p.STATE_OPEN
            and t is not None
            and t.connected
            and not t.disconnecting
            and not t._writeDisconnected
        )

    def writable(self) -> bool:
        transport = self._transport()
        return transport is None or not getattr(transport, "producerPaused", False)

    def buffered(self) -> int:
        transport = self._transport()
        return 0 if transport is None else _buffered(transport)

    def write(self, data: bytes) -> None:
        if not self._open():
            return
        transport = self._transport()
        if self._can_send_directly(transport) and _buffered(transport) == 0:
            try:
                sent = transport.socket.send(data)
            except _SOCKET_ERRORS:
                sent = 0
            except OSError:
                sent = 0  # a broken socket: Twisted finds out in doWrite and closes it
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def close(self, code: int, reason: str) -> None:
        p = self._protocol
        if p.state != p.STATE_OPEN:
            return
        # autobahn drops a peer that has not answered the close frame within this many seconds.
        p.closeHandshakeTimeout = settings.AETURNIS_CLOSE_GRACE_S
        p.sendCloseFrame(code=code, reasonUtf8=close_reason_bytes(reason), isReply=False)

    def on_drain(self, callback: Callable[[], None] | None) -> None:
        self._drain = callback
        transport = self._transport()
        if callback is None or transport is None:
            return
        producer = getattr(transport, "producer", None)
        if producer is None:
            transport.registerProducer(_DrainProducer(self), True)
        else:  # daphne's HTTPChannel stays the producer of an upgraded socket
            producer._aeturnis_drained = self.drained

    def drained(self) -> None:
        callback = self._drain
        if callback is not None:
            callback()


def _patch_close(ws_protocol: Any) -> None:
    original = ws_protocol.handle_reply

    def handle_reply(self: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state == self.STATE_OPEN:
            code = int(message.get("code") or 1000)
            self.sendCloseFrame(
                code=code, reasonUtf8=close_reason_bytes(str(message.get("reason") or "")),
                isReply=False,
            )  # fmt: skip
            return
        original(self, message)
        if message.get("type") == "websocket.accept" and self.state == self.STATE_OPEN:
            _settle_open(self)

    ws_protocol.handle_reply = handle_reply


# What autobahn and daphne keep of the opening handshake (the raw request, with the token, its
# parsed headers, the response, what the scope was built from): read only until it is open.
_HANDSHAKE_ONLY = (
    "http_request_data",
    "http_headers",
    "http_response_data",
    "http_status_line",
    "http_request_uri",
    "http_request_params",
    "http_request_host",
    "http_request_path",
    "websocket_protocols",
    "websocket_origin",
    "websocket_extensions",
    "_wskey",
    "_raw_query_string",
    "clean_headers",
    "protocol_to_accept",
)

# autobahn's per-connection state that an open connection holds at its initial value until it
# closes (checked on autobahn's ``_connectionMade``): the closing handshake's flags, codes and
# timers, auto-ping's (daphne pings by itself), timings, compression, the frame being read.
# With these values on the class (``_patch_at_rest``), an open connection need not hold them.
_AT_REST: dict[str, object] = {
    **dict.fromkeys(_HANDSHAKE_ONLY),
    **dict.fromkeys(
        (
            "closedByMe",
            "droppedByMe",
            "failedByMe",
            "wasClean",
            "wasCloseHandshakeTimeout",
            "wasMaxFramePayloadSizeExceeded",
            "wasMaxMessagePayloadSizeExceeded",
            "wasOpenHandshakeTimeout",
            "wasServerConnectionDropTimeout",
            "wasServingFlashSocketPolicyFile",
            "inside_message",
            "triggered",
        ),
        False,
    ),
    **dict.fromkeys(
        (
            "wasNotCleanReason",
            "localCloseCode",
            "localCloseReason",
            "remoteCloseCode",
            "remoteCloseReason",
            "openHandshakeTimeoutCall",
            "closeHandshakeTimeoutCall",
            "autoPingTimeoutCall",
            "autoPingPending",
            "autoPingPendingCall",
            "autoPingPendingSent",
            "trackedTimings",
            "_perMessageCompress",
            "current_frame",
        )
    ),
    "autoPingPendingSeq": 0,
}
_MISSING = object()


class _Path:
    """What daphne reads of the handshake request once it is open: the path, for its logs."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class _SendQueue:
    """autobahn's queue of writes it paces itself (only those asked to be synchronous or
    chopped, which daphne never asks for), holding a deque only while one waits in it."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: deque[Any] | None = None

    def __len__(self) -> int:
        items = self._items
        return 0 if items is None else len(items)

    def append(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    def popleft(self) -> Any:
        if self._items is None:
            raise IndexError("pop from an empty queue")
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


def _settle_open(protocol: Any) -> None:
    """What an open connection keeps, ~1.6 KB less of it: the opening handshake dropped, the
    state at rest read from the class (``_AT_REST``), an empty send queue without its deque
    (760 bytes), and the instance dict rebuilt at its new size (a dict never shrinks)."""
    cls = type(protocol)
    state = protocol.__dict__
    for name in _HANDSHAKE_ONLY:
        if name in state:
            state[name] = None
    state = {
        name: value
        for name, value in state.items()
        if name not in _AT_REST or value is not getattr(cls, name, _MISSING)
    }
    request = state.get("request")
    if request is not None and not isinstance(request, _Path):
        state["request"] = _Path(request.path)
    queue = state.get("send_queue")
    if isinstance(queue, deque) and not queue:
        state["send_queue"] = _SendQueue()
    protocol.__dict__ = state


def _patch_at_rest(ws_protocol: Any) -> None:
    for name, value in _AT_REST.items():
        if not hasattr(ws_protocol, name):
            setattr(ws_protocol, name, value)


def _patch_applications(server_class: Any) -> None:
    """WebSocket scopes get the ``RawSocket`` and a lean ``Inbox`` (stamping arrival times)
    instead of daphne's ``asyncio.Queue``: ~3.8 KB less per idle connection."""
    original = server_class.create_application

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") != "websocket":
            return original(self, protocol, scope)
        # daphne's own steps (one application per protocol, run as a task), with our inbox.
        assert "application_instance" not in self.connections[protocol]
        scope.setdefault("extensions", {})[RAW_SOCKET] = _DaphneSocket(protocol)
        scope.setdefault("asgi", {"version": "3.0"})
        inbox = Inbox()
        instance = self.application(
            scope=scope, receive=inbox.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            instance.close()
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return inbox

    server_class.create_application = create_application


def _patch_options(ws_protocol: Any) -> None:
    """Keep autobahn's options once per process, not once per connection.

    autobahn copies every option of its factory onto each protocol instance that does not
    already have it (~30 attributes: most of a ~3 KB instance dict). daphne has one factory per
    process, configured before it listens, so the first connection puts the factory's values on
    the class, and autobahn then finds them there for every connection.
    """
    original = ws_protocol._connectionMade

    def _connectionMade(self: Any) -> None:
        cls = type(self)
        if not cls.__dict__.get("_aeturnis_options_shared", False):
            for name in self.CONFIG_ATTRS:
                if not hasattr(cls, name):
                    value = getattr(self.factory, name)
                    # A function on a class would be bound to each protocol: keep it as is.
                    setattr(cls, name, staticmethod(value) if callable(value) else value)
            cls._aeturnis_options_shared = True
        original(self)

    ws_protocol._connectionMade = _connectionMade


def _patch_arrival(ws_protocol: Any) -> None:
    original = ws_protocol.dataReceived

    def dataReceived(self: Any, data: bytes) -> None:
        inbox = self.__dict__.get("application_queue")
        if isinstance(inbox, Inbox):
            inbox.arrived = time.time()
        original(self, data)

    ws_protocol.dataReceived = dataReceived


def _patch_release(ws_protocol: Any) -> None:
    """autobahn resolves ``is_closed`` with the protocol itself: a fired Deferred, held by the
    protocol, whose result is the protocol. That cycle kept every closed daphne connection for
    the cyclic collector (bench/README.md, "The garbage collector"). Once the connection is
    lost it becomes an already-fired Deferred of None: nothing in daphne waits on it."""
    from twisted.internet.defer import succeed

    original = ws_protocol.connectionLost

    def connectionLost(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.is_closed = succeed(None)

    ws_protocol.connectionLost = connectionLost


class _Later:
    """``function(*args)`` as text, worked out only if it is ever written out."""

    __slots__ = ("_args", "_function")

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self._function = function
        self._args = args

    def __str__(self) -> str:
        return str(self._function(*self._args))

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


# What autobahn computes only to hand to its debug lines (checked on its source: every call of
# these in the two modules is an argument of a ``self.log`` call, but ``Timings.__str__``'s).
_DEBUG_ONLY = ("pformat", "hltype", "hlval")


def _patch_debug_formatting(*modules: Any) -> None:
    """autobahn pretty-prints its ~30 options, the transport's details and highlighted names
    for debug lines at every connection, whether debug lines are written or not: ~10 % of
    daphne's CPU in a connect storm (bench/README.md). In its modules those helpers become
    values formatted when a line is written (the same text); ``Timings.__str__``, the one
    caller that needs a ``str`` at once, keeps the real ``pformat``."""
    for module in modules:
        for name in _DEBUG_ONLY:
            original = getattr(module, name, None)
            if original is not None:
                setattr(module, name, partial(_Later, original))
        if hasattr(module, "Timings"):
            module.Timings.__str__ = lambda self: pprint.pformat(self._timings)


def _patch_drain(http_channel: Any) -> None:
    original = http_channel.resumeProducing

    def resumeProducing(self: Any) -> None:
        original(self)
        drained = getattr(self, "_aeturnis_drained", None)
        if drained is not None:
            drained()

    http_channel.resumeProducing = resumeProducing


class _Sink:
    """Where the body of a refused request goes: nowhere."""

    def write(self, data: bytes) -> None:
        return None

    def seek(self, *args: Any) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        return None


TOO_LARGE = (
    b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
    b'Content-Length: 74\r\nConnection: close\r\n\r\n{"success": false, "error": '
    b'{"code": "PAYLOAD_TOO_LARGE", "message": "Request body too large"}}'
)


def _patch_body_limit(web_request: Any) -> None:
    original_length, original_process = web_request.gotLength, web_request.process

    def gotLength(self: Any, length: int | None) -> None:
        if length is not None and length > settings.AETURNIS_MAX_REQUEST_BYTES:
            self._aeturnis_refused = True
            self.content = _Sink()
            self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" for it
            channel = self.channel
            channel.persistent = False
            channel.transport.write(TOO_LARGE)
            channel.transport.loseConnection()
            return
        original_length(self, length)

    def process(self: Any) -> Any:
        if getattr(self, "_aeturnis_refused", False):
            return None
        result = original_process(self)
        channel = self.channel
        if self.transport is None and channel is not None and self in channel.requests:
            # Handed over to a WebSocket: the HTTP channel stays (it reports the socket's
            # drain) but need not keep this request, its headers and body (~1.5 KB).
            channel.requests.remove(self)
        return result

    web_request.gotLength, web_request.process = gotLength, process


def _patch_access_log(generator: Any) -> None:
    original = generator.write_entry

    def write_entry(self: Any, host: Any, date: Any, request: Any, *args: Any, **kw: Any) -> None:
        original(self, host, date, redact(str(request)), *args, **kw)

    generator.write_entry = write_entry


def patch_daphne() -> bool:
    """Install every adjustment when this process is a daphne server; False otherwise.

    Importing ``daphne.server`` installs Twisted's reactor on a loop of its own, so it is only
    patched where daphne itself already imported it (its command line does, before loading the
    application); under uvicorn or in tests nothing is touched.
    """
    if "daphne.server" not in sys.modules:
        return False
    try:  # imported here: only a daphne process has loaded these
        import autobahn.twisted.websocket as autobahn_twisted
        import autobahn.websocket.protocol as autobahn_protocol
        from daphne.access import AccessLogGenerator
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.web.http import HTTPChannel
    except ImportError:
        return False
    if getattr(WebSocketProtocol, "_aeturnis_patched", False):
        return True
    _patch_close(WebSocketProtocol)
    _patch_arrival(WebSocketProtocol)
    _patch_options(WebSocketProtocol)
    _patch_debug_formatting(autobahn_protocol, autobahn_twisted)
    _patch_release(WebSocketProtocol)
    _patch_at_rest(WebSocketProtocol)
    _patch_applications(Server)
    _patch_drain(HTTPChannel)
    _patch_body_limit(WebRequest)
    _patch_access_log(AccessLogGenerator)
    WebSocketProtocol._aeturnis_patched = True
    return True
