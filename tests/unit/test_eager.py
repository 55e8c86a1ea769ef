"""``realtime.core.eager``: coroutines started at once and finished later in the same task."""

from __future__ import annotations

import asyncio

import pytest

from realtime.core.eager import settle, started


async def step(name: str, log: list[str], wait: asyncio.Future[str], fail: bool = False) -> str:
    log.append(f"{name} sent")
    answer = await wait
    log.append(f"{name} answered")
    if fail:
        raise ValueError(name)
    return f"{name}:{answer}"


async def test_each_runs_up_to_its_first_wait_at_once_and_finishes_in_the_awaiting_task() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    a, b = loop.create_future(), loop.create_future()

    first = started(step("a", log, a))
    second = started(step("b", log, b))
    assert log == ["a sent", "b sent"]  # both first parts ran, no task was made
    b.set_result("2")  # answers in another order do not matter
    a.set_result("1")

    assert await settle(first, second) == ["a:1", "b:2"]
    assert log == ["a sent", "b sent", "a answered", "b answered"]
    assert asyncio.current_task() is not None and len(asyncio.all_tasks()) == 1


async def test_a_coroutine_that_never_waits_has_its_result_or_error_at_once() -> None:
    async def plain() -> int:
        return 7

    async def broken() -> int:
        raise KeyError("x")

    assert await started(plain()) == 7
    with pytest.raises(KeyError):
        await started(broken())


async def test_every_step_finishes_when_one_fails_and_the_first_error_is_raised() -> None:
    loop = asyncio.get_running_loop()
    log: list[str] = []
    futures = [loop.create_future() for _ in range(3)]
    runs = [
        started(step("a", log, futures[0], fail=True)),
        started(step("b", log, futures[1], fail=True)),
        started(step("c", log, futures[2])),
    ]
    for future in futures:
        future.set_result("ok")

    with pytest.raises(ValueError, match="a"):
        await settle(*runs)
    assert log.count("c answered") == 1 and log.count("b answered") == 1


async def test_a_failed_wait_reaches_the_coroutine_as_it_would_when_awaited() -> None:
    loop = asyncio.get_running_loop()
    caught: list[BaseException] = []

    async def guarded(wait: asyncio.Future[None]) -> str:
        try:
            await wait
        except ConnectionError as exc:
            caught.append(exc)
            return "refused"
        return "served"

    wait: asyncio.Future[None] = loop.create_future()
    run = started(guarded(wait))
    wait.set_exception(ConnectionError("down"))

    assert await run == "refused"
    assert len(caught) == 1


async def test_cancelling_the_task_closes_the_steps_not_finished_yet() -> None:
    loop = asyncio.get_running_loop()
    closed: list[str] = []

    async def held(name: str, wait: asyncio.Future[None]) -> None:
        try:
            await wait
        finally:
            closed.append(name)

    never_a: asyncio.Future[None] = loop.create_future()
    never_b: asyncio.Future[None] = loop.create_future()

    async def both() -> None:
        await settle(started(held("a", never_a)), started(held("b", never_b)))

    task = asyncio.ensure_future(both())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert closed == ["a", "b"]  # a by the cancellation, b closed where it waited


async def test_steps_whose_answers_have_come_finish_without_a_round_of_the_loop() -> None:
    """Replies that arrived together: the task goes on at once instead of waking once per
    step (each wakeup is a round of the event loop)."""
    loop = asyncio.get_running_loop()
    log: list[str] = []
    a, b = loop.create_future(), loop.create_future()
    runs = (started(step("a", log, a)), started(step("b", log, b)))
    a.set_result("1")
    b.set_result("2")
    rounds: list[int] = []
    loop.call_soon(rounds.append, 1)

    assert await settle(*runs) == ["a:1", "b:2"]
    assert rounds == []  # the loop did not run in between


async def test_a_run_that_did_not_wait_has_its_outcome_without_awaiting() -> None:
    async def plain() -> int:
        return 3

    async def broken() -> int:
        raise KeyError("x")

    async def waits(wait: asyncio.Future[int]) -> int:
        return await wait

    done, failed = started(plain()), started(broken())
    assert not done.waiting and done.result() == 3
    with pytest.raises(KeyError):
        failed.result()
    wait: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    pending = started(waits(wait))
    assert pending.waiting
    with pytest.raises(RuntimeError):
        pending.result()
    wait.set_result(4)
    assert await pending == 4
