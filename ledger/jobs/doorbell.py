"""The doorbell: the message that wakes the worker of a partition after its jobs commit.

One publisher for every sender (the API after accepting jobs, the relay, a worker handing
over a long drain). The message itself goes through a ``Send`` callable that the edge
supplies (the Celery app's ``send_task`` in the API and the workers, a `RecordingSend` in
unit tests), so this module knows no task queue. Coalescing uses one Redis key per
partition, present while a doorbell waits in its queue.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from ledger.settings import Settings

log = logging.getLogger(__name__)

# Task names the workers register (workers/tasks.py, workers/stripe_tasks.py); senders use
# them by name so that they never import the worker code.
POST_TASK = "ledger.post"
STRIPE_EVENT_TASK = "ledger.stripe.event"

# A waiting-doorbell key expires on its own, in case that doorbell was lost.
WAITING_KEY_SECONDS = 60


class Send(Protocol):
    def __call__(self, task: str, args: list[Any], queue: str) -> None: ...


class Keys(Protocol):
    """The part of a Redis client the doorbell uses (redis.Redis, fakeredis.FakeRedis)."""

    def set(self, name: str, value: Any, *, nx: bool = ..., ex: int = ...) -> Any: ...

    def delete(self, *names: str) -> Any: ...


class RecordingSend:
    """A `Send` for tests: remembers every message instead of sending it."""

    def __init__(self, fail: bool = False):
        self.sent: list[tuple[str, list[Any], str]] = []
        self.fail = fail

    def __call__(self, task: str, args: list[Any], queue: str) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append((task, list(args), queue))


class Doorbell:
    def __init__(self, settings: Settings, send: Send, keys: Keys | None):
        self.settings = settings
        self.send = send
        self.keys = keys

    def waiting_key(self, partition: int) -> str:
        """Present while a doorbell of ``partition`` waits in its queue, so senders can skip
        ringing again: that doorbell will see their jobs (its worker clears the key before
        it claims)."""
        return self.settings.queue_name(partition) + ".waiting"

    def ring(self, partitions: Iterable[int], *, coalesce: bool = True) -> list[int]:
        """Wake the workers of ``partitions``; returns the partitions rung. With ``coalesce``,
        a partition whose previous doorbell still waits is not rung again: under a steady
        stream of submissions that saves a message per partition per request. A send that
        fails raises after un-marking the partitions not rung, so the next sender rings them."""
        partitions = list(dict.fromkeys(partitions))
        if coalesce and self.keys is not None:
            partitions = [p for p in partitions if self._mark(p)]
        for i, partition in enumerate(partitions):
            try:
                self.send(POST_TASK, [partition], self.settings.queue_name(partition))
            except Exception:
                if coalesce:
                    # This partition and the ones after it were marked but never rung.
                    for unsent in partitions[i:]:
                        self.clear(unsent)
                raise
        return partitions

    def clear(self, partition: int) -> None:
        """The doorbell of ``partition`` is no longer waiting (its worker took it): from now
        on a submission must ring again. Best effort: the key expires anyway."""
        if self.keys is None:
            return
        try:
            self.keys.delete(self.waiting_key(partition))
        except Exception:  # noqa: BLE001 - expires on its own; the relay covers the gap
            log.warning("partition %s: could not clear its doorbell key", partition,
                        exc_info=True)

    def _mark(self, partition: int) -> bool:
        try:
            return bool(self.keys.set(self.waiting_key(partition), 1, nx=True,
                                      ex=WAITING_KEY_SECONDS))
        except Exception:  # noqa: BLE001 - ringing without the key only costs a duplicate
            return True
