"""Prometheus metrics of the realtime layer (served at ``/metrics`` by ``realtime.ops.metrics``).

Several server processes are supported in one of two ways, chosen by the environment:

* ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus-client multiprocess mode): every process writes
  its values to files in that directory and ``/metrics`` on any process reports the total over
  all of them, collected by ``MultiProcessCollector``. The directory must exist, be shared by
  the processes of one host, be set before they start and be emptied on every (re)deploy.
  ``aeturnis_connections`` is summed over live processes only ("livesum"): a process removes
  its gauge files when it exits normally; after a ``kill -9`` empty the directory. Counters of
  exited processes keep counting in the totals, as Prometheus expects. Per-process CPU and
  memory metrics are not available in this mode.
* unset: each process reports only its own values from its default registry (plus the
  ``process_*`` and ``python_*`` metrics); scrape every process as its own target and add
  them up in PromQL (``sum without (instance) (...)``).

Label values are bounded: events are the names of the dispatch table (anything else is
``unknown``), error codes are ``ErrorCode`` values (anything else is ``other``). Hot paths use
children bound once (``EventCounter``, ``OUT_*``) and one ``inc(n)`` per room broadcast.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import generate_latest

from realtime.core.errors import ErrorCode

# The same test prometheus-client applies when it picks where values live.
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

UNKNOWN_EVENT = "unknown"
OTHER_CODE = "other"

# ``*_created`` series would double the series count for no use here.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONNECTIONS = Gauge(
    "aeturnis_connections",
    "Authenticated WebSocket connections open, by transport.",
    ["transport"],
    multiprocess_mode="livesum",
)
MESSAGES_IN = Counter(
    "aeturnis_messages_in_total",
    "Client requests routed, by event ('unknown' for names not in the dispatch table).",
    ["event"],
)
MESSAGES_OUT = Counter(
    "aeturnis_messages_out_total",
    "Frames handed to sockets, by kind: event (to one connection), room (one per room "
    "delivery to a local member), ack.",
    ["kind"],
)
BROADCAST_FANOUT = Histogram(
    "aeturnis_broadcast_fanout_seconds",
    "Time this process spends handing one room event to its local members.",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)
RATE_LIMITED = Counter(
    "aeturnis_rate_limited_total",
    "Requests refused by a rate limit, by event.",
    ["event"],
)
ERRORS = Counter(
    "aeturnis_errors_total",
    "Error replies sent to clients (request errors and refused handshakes), by code.",
    ["code"],
)
OUTBOUND_OVERFLOWS = Counter(
    "aeturnis_outbound_overflows_total",
    "Frames that found a connection's outbound backlog over its bound.",
)
SLOW_CONSUMER_CLOSES = Counter(
    "aeturnis_slow_consumer_closes_total",
    "Connections closed 4008 SLOW_CONSUMER because they fell too far behind.",
)
DEPENDENCY_UP = Gauge(
    "aeturnis_dependency_up",
    "Whether this process can reach a dependency (redis, database): 1 or 0.",
    ["dependency"],
    multiprocess_mode="min",
)
DEPENDENCY_OUTAGES = Counter(
    "aeturnis_dependency_outages_total",
    "Outages of a dependency seen by this process (each counted once, when it starts).",
    ["dependency"],
)
SEND_FAILURES = Counter(
    "aeturnis_send_failures_total",
    "Connections closed because a send to them failed (the server refused a frame, the "
    "socket broke).",
)

LOGINS = Counter(
    "aeturnis_logins_total",
    "Password logins over HTTP (POST /api/auth/token/), by outcome: ok; failed (wrong "
    "credentials); throttled (refused before the hash: a failure limit of the client IP or "
    "the username); busy (refused before the hash: no password-check slot free in time).",
    ["outcome"],
)

LOGIN_OK = LOGINS.labels("ok")
LOGIN_FAILED = LOGINS.labels("failed")
LOGIN_THROTTLED = LOGINS.labels("throttled")
LOGIN_BUSY = LOGINS.labels("busy")
OUT_EVENT = MESSAGES_OUT.labels("event")
OUT_ROOM = MESSAGES_OUT.labels("room")
OUT_ACK = MESSAGES_OUT.labels("ack")


class LabelledCounter:
    """A counter with one child per known label value; other values share ``fallback``.

    Keeps label cardinality bounded whatever clients send, and binds every child once.
    """

    __slots__ = ("_children", "_fallback")

    def __init__(self, counter: Counter, values: Iterable[str], *, fallback: str) -> None:
        self._children = {str(value): counter.labels(str(value)) for value in values}
        self._fallback = counter.labels(fallback)

    def inc(self, value: str) -> None:
        self._children.get(value, self._fallback).inc()


def event_counter(counter: Counter, events: Iterable[str]) -> LabelledCounter:
    """``counter`` labelled by event, limited to ``events`` (the dispatch table's names)."""
    return LabelledCounter(counter, events, fallback=UNKNOWN_EVENT)


ERRORS_BY_CODE = LabelledCounter(ERRORS, (code.value for code in ErrorCode), fallback=OTHER_CODE)


def count_error(code: str) -> None:
    """One error reply with ``code`` (an ``ErrorCode`` or the code of a ``Reject``)."""
    ERRORS_BY_CODE.inc(str(code))


def _mark_process_dead() -> None:
    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


if MULTIPROCESS:
    # Remove this process's live gauges (connections) from the totals when it exits.
    atexit.register(_mark_process_dead)


def render() -> bytes:
    """The metrics in Prometheus text format 0.0.4: of every process, or of this one."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
