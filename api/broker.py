"""How the API sends messages to the workers: by task name, to a queue, through a light
Celery client that only publishes (it imports none of the worker code).

The doorbell after accepting jobs and the Stripe event after a webhook both go through a
`CelerySend`, the `ledger.service.Send` of that client. Importing this module starts nothing.
"""
from __future__ import annotations

import threading
from typing import Any

from ledger import service
from ledger.settings import Settings

# A short retry covers a blip; a longer outage is the relay's (or the inbox sweep's) job,
# and must not hold up the answer to a request whose work is already committed.
SHORT_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
               "interval_max": 0.5}
# Clients of the API notice a dead Redis within seconds.
QUICK_SOCKETS = {"socket_timeout": 5, "socket_connect_timeout": 2}


class CelerySend:
    """`ledger.service.Send` over a Celery app: the message by task name, to a queue."""

    def __init__(self, celery: Any, retry_policy: dict | None = None):
        self.celery = celery
        self.retry_policy = retry_policy

    def __call__(self, task: str, args: list[Any], queue: str) -> None:
        options: dict = {"queue": queue}
        if self.retry_policy is not None:
            options.update(retry=True, retry_policy=self.retry_policy)
        self.celery.send_task(task, args=list(args), **options)


class Broker:
    """One light Celery client (it only publishes) and one Redis client (the doorbell's
    waiting keys) per broker URL, made on first use and shared by the threads of a process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[Any, Any]] = {}

    def clients(self, url: str) -> tuple[Any, Any]:
        with self._lock:
            found = self._clients.get(url)
            if found is None:
                import redis
                from celery import Celery

                celery = Celery("ledger-sender", broker=url)
                celery.conf.update(broker_transport_options=dict(QUICK_SOCKETS),
                                   broker_connection_timeout=2)
                keys = redis.Redis.from_url(url, **QUICK_SOCKETS)
                found = self._clients[url] = (celery, keys)
            return found

    def send(self, url: str) -> CelerySend:
        return CelerySend(self.clients(url)[0], SHORT_RETRY)

    def doorbell(self, settings: Settings) -> Any:
        """The doorbell publisher of a sender outside the workers; None without a broker
        (the relay rings the partitions later)."""
        if not settings.redis_url:
            return None
        celery, keys = self.clients(settings.redis_url)
        return service.Doorbell(settings, CelerySend(celery, SHORT_RETRY), keys)
