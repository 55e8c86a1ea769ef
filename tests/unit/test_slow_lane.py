"""A connection's slow lane: requests run in order, a full lane makes the reader wait (nothing
is refused for being sent quickly), and a closed lane takes nothing more."""

from __future__ import annotations

import asyncio

from realtime.connection.lanes import SLOW_LANE_LIMIT, SlowLane


async def test_a_burst_larger_than_the_lane_is_run_in_order_without_refusal() -> None:
    lane = SlowLane()
    done: list[int] = []
    release = asyncio.Event()

    def job(n: int):  # type: ignore[no-untyped-def]
        async def run() -> None:
            await release.wait()
            done.append(n)

        return run

    accepted: list[bool] = []

    async def reader() -> None:
        for n in range(SLOW_LANE_LIMIT * 3):
            accepted.append(await lane.submit(job(n)))

    reading = asyncio.ensure_future(reader())
    await asyncio.sleep(0.05)
    # The lane is full and the reader waits for room instead of refusing.
    assert not reading.done()
    assert len(accepted) == SLOW_LANE_LIMIT + 1  # the running job left the queue
    release.set()
    await asyncio.wait_for(reading, 5)
    while len(done) < SLOW_LANE_LIMIT * 3:
        await asyncio.sleep(0.01)
    assert accepted == [True] * (SLOW_LANE_LIMIT * 3)
    assert done == list(range(SLOW_LANE_LIMIT * 3))


async def test_a_barrier_blocks_until_done_and_a_closed_lane_takes_nothing() -> None:
    lane = SlowLane()
    gate = asyncio.Event()

    async def barrier() -> None:
        await gate.wait()

    assert await lane.submit(barrier, barrier=True)
    assert lane.blocking
    gate.set()
    await asyncio.sleep(0.01)
    assert not lane.blocking

    stuck = asyncio.Event()

    async def never() -> None:
        await stuck.wait()

    for _ in range(SLOW_LANE_LIMIT + 1):
        await lane.submit(never)
    waiting = asyncio.ensure_future(lane.submit(never))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    lane.close()
    assert await asyncio.wait_for(waiting, 1) is False
    assert await lane.submit(never) is False
