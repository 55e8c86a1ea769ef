"""One pipelined Redis connection per event loop, for the hot path's scripts and commands.

redis-py's asyncio client checks a connection out of its pool for every command, arms a timeout
around the write and another around the read, and returns the connection: about 40 µs of CPU per
command on this machine with 50 callers at once, against about 5 µs for writing the command to
one shared connection and resolving a future when its reply arrives (bench/README.md). Redis
answers the commands of a connection in the order it received them, so one connection carries
every concurrent caller's commands back to back and matches replies to callers by order, as
Node's ``redis`` client does. A connect + ``character:select`` + disconnect makes about ten
round trips and a chat message two: that difference was a fifth of a connect's CPU.

It keeps the failure rules of ``realtime.core.redis_client``: ``timeout_s`` (1 s) to connect and
as much for an answer, no retries, and redis-py's exception classes (``REDIS_ERRORS`` covers
them), so callers report an unreachable Redis the same way whichever client carried the call.

* A reply not received within ``timeout_s`` fails every unanswered command of the
  connection with ``TimeoutError`` and drops the connection: the replies still on their way
  could no longer be matched to their callers.
* A lost connection fails its unanswered commands with ``ConnectionError``; the next command
  connects again (after a Redis restart the first command already succeeds, unlike redis-py's
  pool, where every pooled connection fails once).
* A caller that stops waiting (its task cancelled) leaves its slot in the queue; its reply is
  read and dropped, so the others stay matched.
* Only commands that answer at once belong here: never a blocking command (``BLPOP``) or
  ``SUBSCRIBE``, which would hold up every caller behind it.

Plain ``redis://`` URLs only; ``rediss://`` and Unix sockets keep redis-py
(``realtime.core.redis_client.script`` chooses).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis
import redis
from redis.asyncio.connection import parse_url

from realtime.core.per_loop import PerLoop

Arg = bytes | str | int | float


def encode(args: Sequence[Arg]) -> bytes:
    """A command in RESP: an array of bulk strings (numbers as their decimal text).

    Most arguments are ASCII text and numbers (script hashes, keys, ids, times): those are
    built as one ``str``, encoded once (~35 % cheaper than a ``bytes`` piece per argument);
    from the first other argument on (bytes, non-ASCII text), pieces of ``bytes``."""
    parts = [f"*{len(args)}\r\n"]
    append = parts.append
    for at, arg in enumerate(args):
        if type(arg) is str and arg.isascii():
            append(f"${len(arg)}\r\n{arg}\r\n")
        elif type(arg) is int or type(arg) is float:
            text = repr(arg)
            append(f"${len(text)}\r\n{text}\r\n")
        else:
            return "".join(parts).encode() + _bulk_strings(args[at:])
    return "".join(parts).encode()


def _bulk_strings(args: Sequence[Arg]) -> bytes:
    out = []
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            raise redis.exceptions.DataError(f"cannot send {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def reply_error(error: hiredis.ReplyError) -> redis.exceptions.RedisError:
    """An error reply as the exception redis-py would raise for it."""
    message = str(error)
    code = message.split(" ", 1)[0]
    if code == "NOSCRIPT":
        return redis.exceptions.NoScriptError(message)
    if code == "READONLY":
        return redis.exceptions.ReadOnlyError(message)
    if code == "LOADING":
        return redis.exceptions.BusyLoadingError(message)
    return redis.exceptions.ResponseError(message)


class _Connection(asyncio.Protocol):
    """One TCP connection: commands out in order, replies matched to their futures in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, timeout_s: float) -> None:
        self._loop = loop
        self._address = address
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader()
        # (future, deadline) of every command sent and not yet answered, oldest first
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(redis.exceptions.ConnectionError(f"Connection to {self._address} lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pending
        while (reply := reader.gets()) is not False:
            if not pending:  # Redis does not speak unasked on a command connection
                self._drop(redis.exceptions.ConnectionError("unexpected reply from Redis"))
                return
            future, _ = pending.popleft()
            if future.done():  # its caller stopped waiting
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(reply_error(reply))
            else:
                future.set_result(reply)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        transport = self._transport
        if self.lost or transport is None:
            raise redis.exceptions.ConnectionError(f"Connection to {self._address} lost")
        transport.write(command)
        future = self._loop.create_future()
        deadline = self._loop.time() + self._timeout_s
        self._pending.append((future, deadline))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
        return future

    def _check_deadline(self) -> None:
        self._timer = None
        if not self._pending:
            return
        _, deadline = self._pending[0]
        if deadline <= self._loop.time():
            self._drop(redis.exceptions.TimeoutError(f"Timeout reading from {self._address}"))
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def _drop(self, error: redis.exceptions.RedisError) -> None:
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._drop(redis.exceptions.ConnectionError("Connection closed by the client"))

    def _fail(self, error: redis.exceptions.RedisError) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, deque()
        for future, _ in pending:
            if not future.done():
                future.set_exception(error)


class PipelinedRedis:
    """This event loop's shared connection to the Redis of ``url``; connects on first use."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        options = parse_url(url)
        self._host = str(options.get("host", "localhost"))
        self._port = int(options.get("port", 6379))
        self._hello: list[tuple[Arg, ...]] = []
        password = options.get("password")
        if password is not None:
            username = options.get("username")
            self._hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if int(options.get("db", 0)):
            self._hello.append(("SELECT", int(options["db"])))
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    def execute(self, *args: Arg) -> Awaitable[Any]:
        """Send one command now (or once connected); await its reply. Raises redis-py's
        ``ConnectionError``/``TimeoutError`` when Redis is unreachable or slow, and its
        ``ResponseError`` family for an error reply."""
        connection = self._connection
        if connection is None or connection.lost:
            return self._execute_connecting(encode(args))
        return connection.send(encode(args))

    async def _execute_connecting(self, command: bytes) -> Any:
        connection = await self._connect()
        return await connection.send(command)

    async def _connect(self) -> _Connection:
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.ensure_future(self._open())
            connecting.add_done_callback(self._connected)
        return await asyncio.shield(connecting)

    def _connected(self, connecting: asyncio.Future[_Connection]) -> None:
        self._connecting = None
        if not connecting.cancelled() and connecting.exception() is None:
            self._connection = connecting.result()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        address = f"{self._host}:{self._port}"
        try:
            async with asyncio.timeout(self._timeout_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, address, self._timeout_s), self._host, self._port
                )
        except TimeoutError as exc:
            raise redis.exceptions.TimeoutError(f"Timeout connecting to {address}") from exc
        except OSError as exc:
            raise redis.exceptions.ConnectionError(f"Error connecting to {address}: {exc}") from exc
        try:
            for reply in [connection.send(encode(hello)) for hello in self._hello]:
                await reply
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        """Drop the connection; unanswered commands fail with ``ConnectionError``."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_clients = PerLoop(PipelinedRedis)


def pipelined_redis(url: str, timeout_s: float) -> PipelinedRedis:
    """The running loop's client (a loop's client is never used from another loop)."""
    return _clients.get(url, timeout_s)


def close_pipelined_redis() -> None:
    client = _clients.pop()
    if client is not None:
        client.close()


class Script:
    """A Lua script run with ``EVALSHA`` on the loop's pipelined connection, sent again with
    its body (``EVAL``) when Redis does not know it (after a restart or ``SCRIPT FLUSH``)."""

    def __init__(self, lua: str, connection: Callable[[], PipelinedRedis]) -> None:
        self._connection = connection
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()  # noqa: S324 - Redis names scripts so
        self._batched: Any = None  # redis-py's Script, for calls inside a redis-py pipeline

    def __call__(
        self, keys: Sequence[Arg] = (), args: Sequence[Arg] = (), client: Any = None
    ) -> Awaitable[Any]:
        if client is not None:  # a redis-py pipeline batching this call with others
            if self._batched is None:  # one object: the pipeline checks it exists only once
                self._batched = client.register_script(self.lua)
            run: Awaitable[Any] = self._batched(keys=keys, args=args, client=client)
            return run
        return self._run(keys, args)

    async def _run(self, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        client = self._connection()
        try:
            return await client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.execute("EVAL", self.lua, len(keys), *keys, *args)
