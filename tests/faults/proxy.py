"""A TCP proxy of the fault suite's own, between server processes and one dependency.

It runs an asyncio loop in a daemon thread of the test process and listens on a loopback port
of its own; servers are pointed at that port instead of the dependency's. A test switches it
between three modes (every switch takes effect before the call returns):

* ``restore()`` — pass: bytes flow both ways, new connections are connected upstream.
* ``cut()`` — the dependency is gone: every open connection is reset (RST on both sides) and
  the listening socket is closed, so new connections are refused (``ECONNREFUSED``), as when
  the dependency's host stops answering with resets. ``restore()`` listens again on the same
  port.
* ``stall()`` — the network holds everything: open connections stay open but nothing is
  forwarded in either direction (what was read waits here, the rest in kernel buffers); new
  connections are accepted and held, not connected upstream. ``restore()`` delivers what was
  held, in order, as TCP would after a partition heals: a statement a server sent during the
  stall reaches the dependency afterwards unless the server dropped that connection. A held
  new connection whose client gave up meanwhile is dropped without reaching the dependency.

``stats`` counts connections and bytes, so a test can show that the servers really talk to
the dependency through the proxy (otherwise a fault would prove nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

PASS, CUT, STALL = "pass", "cut", "stall"
CHUNK = 64 * 1024
CONTROL_TIMEOUT_S = 10.0


@dataclass
class ProxyStats:
    accepted: int = 0  # client connections accepted
    upstream_connects: int = 0  # connections made to the dependency
    upstream_failures: int = 0  # connections the dependency refused (or could not be reached)
    resets: int = 0  # connections reset by cut()
    to_upstream: int = 0  # bytes forwarded client → dependency
    to_client: int = 0  # bytes forwarded dependency → client


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN: the peer sees ``ECONNRESET``."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and, once connected, its connection to the dependency."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.client_reader = reader
        self.client_writer = writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        _reset(self.client_writer)
        _reset(self.upstream_writer)


class FaultProxy:
    """``FaultProxy("postgres", "127.0.0.1", 5432).start()``; see the module docstring."""

    def __init__(self, name: str, upstream_host: str, upstream_port: int) -> None:
        self.name = name
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.mode = PASS
        self.stats = ProxyStats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{name}", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._gate: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<FaultProxy {self.name} :{self.port} → {self.upstream[0]}:{self.upstream[1]}>"

    # --- control, from any thread -------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def stall(self) -> None:
        self._call(self._stall())

    def restore(self) -> None:
        self._call(self._restore())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CONTROL_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def open_links(self) -> int:
        return len(self._links)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    # --- in the proxy's loop ------------------------------------------------------------------

    async def _start(self) -> None:
        self._gate = asyncio.Event()
        self._gate.set()
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()  # no wait_closed(): on 3.12 it would wait for every link
            self._server = None

    async def _cut(self) -> None:
        self.mode = CUT
        self._stop_listening()
        links, self._links = list(self._links), set()
        for link in links:
            link.reset()
            if link.task is not None:
                link.task.cancel()
            self.stats.resets += 1
        assert self._gate is not None
        self._gate.set()  # nothing waits any more: every link is gone

    async def _stall(self) -> None:
        assert self._gate is not None
        if self._server is None:
            await self._listen()
        self._gate.clear()
        self.mode = STALL

    async def _restore(self) -> None:
        assert self._gate is not None
        if self._server is None:
            await self._listen()
        self.mode = PASS
        self._gate.set()

    async def _close(self) -> None:
        """Drop everything and wait until every link's task has finished, so that stopping the
        loop destroys no pending task (asyncio would log each with a traceback from this
        thread, and on Python 3.11 formatting tracebacks in two threads at once can break
        ``ast`` for the whole process: "AST constructor recursion depth mismatch")."""
        self._stop_listening()
        tasks = []
        for link in list(self._links):
            link.reset()
            if link.task is not None:
                link.task.cancel()
                tasks.append(link.task)
        self._links.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == CUT:  # accepted just before the listener closed
            _reset(writer)
            return
        self.stats.accepted += 1
        link = _Link(reader, writer)
        self._links.add(link)
        link.task = asyncio.current_task()
        try:
            await self._serve(link)
        except asyncio.CancelledError:
            link.reset()
        except OSError:
            link.reset()
        finally:
            self._links.discard(link)

    async def _serve(self, link: _Link) -> None:
        assert self._gate is not None
        await self._gate.wait()  # a connection made during a stall is held here
        if link.client_reader.at_eof():  # its client gave up meanwhile
            link.client_writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.stats.upstream_failures += 1
            _reset(link.client_writer)
            return
        self.stats.upstream_connects += 1
        link.upstream_writer = up_writer
        await asyncio.gather(
            self._pump(link.client_reader, up_writer, "to_upstream"),
            self._pump(up_reader, link.client_writer, "to_client"),
        )
        link.client_writer.close()
        up_writer.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, counter: str
    ) -> None:
        """Copy ``source`` to ``sink`` until EOF, holding every chunk while the gate is shut."""
        assert self._gate is not None
        try:
            while True:
                data = await source.read(CHUNK)
                await self._gate.wait()
                if not data:
                    if sink.can_write_eof() and not sink.is_closing():
                        sink.write_eof()
                    return
                sink.write(data)
                setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
                await sink.drain()
        except Exception:  # not CancelledError: cut() and close() end links that way
            # One side broke: so does the other, as a reset (a dependency that dies mid-answer).
            _reset(sink)
