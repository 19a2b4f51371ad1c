"""Failed attempts at /oauth2/token, counted per client id and per source address, so that
guessing a secret stops after a few tries (429 with Retry-After) rather than running one
argon2 hash after another.

The counters live in Redis when the API has one, so that every API process behind a load
balancer shares them. Without Redis (or while it is unreachable) each process counts on its
own: the limit then holds per process, which still stops a single guesser but lets one who
spreads over N processes try N times as often.

Counts are fixed windows: the first failure opens a window of ``window_seconds``; the key
expires with it. A success clears the client id's count (not the address's: one right secret
must not wash out the guesses of a shared address).
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("api.throttle")

QUICK_SOCKETS = {"socket_timeout": 1, "socket_connect_timeout": 1}


@dataclass(frozen=True)
class Key:
    name: str
    limit: int


class LocalCounts:
    """Fixed-window counters of this process (the fallback without Redis)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def get(self, name: str) -> tuple[int, float]:
        """(count, seconds left in its window)."""
        with self._lock:
            count, ends = self._counts.get(name, (0, 0.0))
            left = ends - self.clock()
            if left <= 0:
                self._counts.pop(name, None)
                return 0, 0.0
            return count, left

    def incr(self, name: str, window: float) -> None:
        with self._lock:
            now = self.clock()
            count, ends = self._counts.get(name, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
                self._sweep(now)
            self._counts[name] = (count + 1, ends)

    def clear(self, name: str) -> None:
        with self._lock:
            self._counts.pop(name, None)

    def _sweep(self, now: float) -> None:
        # Keys expire lazily; a spray of made-up client ids must not grow memory forever.
        if len(self._counts) > 10_000:
            for name in [n for n, (_, ends) in self._counts.items() if ends <= now]:
                del self._counts[name]


class FailureLimiter:
    def __init__(self, redis_client: Any | None, *, prefix: str, window_seconds: float,
                 per_client: int, per_address: int):
        self.redis = redis_client
        self.prefix = prefix
        self.window = window_seconds
        self.per_client = per_client
        self.per_address = per_address
        self.local = LocalCounts()

    @classmethod
    def from_settings(cls, settings: Any) -> "FailureLimiter":
        client = None
        if settings.redis_url:
            import redis

            client = redis.Redis.from_url(settings.redis_url, **QUICK_SOCKETS)
        return cls(client, prefix=f"{settings.queue_prefix}.token-failures",
                   window_seconds=settings.token_failure_window_seconds,
                   per_client=settings.token_max_failures,
                   per_address=settings.token_max_failures_per_address)

    def keys(self, client_id: str, address: str | None) -> list[Key]:
        # Hashed: a client id is whatever the caller sent, of any length.
        digest = hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        out = [Key(f"{self.prefix}:client:{digest}", self.per_client)]
        if address:
            out.append(Key(f"{self.prefix}:address:{address}", self.per_address))
        return out

    def retry_after(self, keys: list[Key]) -> int | None:
        """Seconds to wait when any key is at its limit, else None."""
        worst = None
        for key, (count, left) in zip(keys, self._get([k.name for k in keys])):
            if count >= key.limit:
                wait = max(1, math.ceil(left))
                worst = wait if worst is None else max(worst, wait)
        return worst

    def failed(self, keys: list[Key]) -> None:
        window = max(1, math.ceil(self.window))
        if self.redis is not None:
            try:
                with self.redis.pipeline(transaction=True) as pipe:
                    for key in keys:
                        # The window opens with the first failure; INCR keeps its expiry.
                        pipe.set(key.name, 0, ex=window, nx=True)
                        pipe.incr(key.name)
                    pipe.execute()
                return
            except Exception:
                log.warning("token failure counters: Redis unreachable, counting in-process",
                            exc_info=True)
        for key in keys:
            self.local.incr(key.name, self.window)

    def succeeded(self, keys: list[Key]) -> None:
        client_key = keys[0].name
        if self.redis is not None:
            try:
                self.redis.delete(client_key)
            except Exception:
                log.warning("token failure counters: Redis unreachable", exc_info=True)
        self.local.clear(client_key)

    def _get(self, names: list[str]) -> list[tuple[int, float]]:
        local = [self.local.get(name) for name in names]
        if self.redis is None:
            return local
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.get(name)
                    pipe.pttl(name)
                raw = pipe.execute()
        except Exception:
            log.warning("token failure counters: Redis unreachable, counting in-process",
                        exc_info=True)
            return local
        out = []
        for i, (count_l, left_l) in enumerate(local):
            count = int(raw[2 * i] or 0)
            left = max(raw[2 * i + 1] or 0, 0) / 1000
            # Failures counted in-process while Redis was away still count.
            out.append((count + count_l, max(left, left_l)))
        return out
