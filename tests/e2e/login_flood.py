"""A login flood, run as a process of its own: ``python -m tests.e2e.login_flood PORT``.

Concurrent clients post wrong passwords to ``POST /api/auth/token/`` for ``--seconds``, each
request on its own connection, for its own username and from its own address
(``X-Forwarded-For``, believed when the server trusts 127.0.0.1 as a proxy). It then waits for
the requests in flight and prints one JSON object: the statuses, error codes, ``Retry-After``
values and client errors it saw. Standard library only; a process of its own so that the
flood's clients never hold the GIL of the process that measures the server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
import uuid
from collections import Counter
from typing import Any

REQUEST_TIMEOUT_S = 30.0  # the wait for a password-check slot plus one hash, with room

# From a random start, so that the addresses of two processes (a flood, a test) do not meet.
_addresses = itertools.count(random.randrange(1 << 24))


def next_address() -> str:
    """A distinct client address from 10.0.0.0/8 for every call."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


async def post_login(
    port: int, username: str, password: str, forwarded_for: str
) -> tuple[int, dict[str, str], Any]:
    """One ``POST /api/auth/token/`` on its own connection: (status, headers, JSON body)."""
    body = json.dumps({"username": username, "password": password}).encode()
    head = (
        f"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        raw = await reader.read()
    finally:
        writer.close()
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        payload = _unchunk(payload)
    try:
        decoded = json.loads(payload) if payload else None
    except ValueError:
        decoded = payload.decode(errors="replace")
    return status, headers, decoded


async def flood(port: int, clients: int, seconds: float) -> dict[str, dict[str, int]]:
    statuses: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    retry_after: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            username = f"flood_{uuid.uuid4().hex[:12]}"
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status, headers, body = await post_login(
                        port, username, "wrong", next_address()
                    )
            except (OSError, TimeoutError, ValueError, IndexError) as exc:
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            statuses[str(status)] += 1
            if isinstance(body, dict) and "code" in body:
                codes[str(body["code"])] += 1
            if "retry-after" in headers:
                retry_after[headers["retry-after"]] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return {
        "statuses": dict(statuses),
        "codes": dict(codes),
        "retry_after": dict(retry_after),
        "errors": dict(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(flood(args.port, args.clients, args.seconds))))


if __name__ == "__main__":
    main()
