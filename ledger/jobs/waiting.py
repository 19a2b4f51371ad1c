"""Waiting for posting jobs to finish (REST ``Prefer: wait``) without polling for them.

Every transaction that finishes jobs notifies ``FINISHED_CHANNEL`` with their partition
(``claims._MARK``), and PostgreSQL delivers it when the transaction commits. One listener
per process and database (a thread on a connection of its own, started by the first wait
and closed once nobody has waited for a while) wakes the waits on that partition, which
read their jobs again: one read per batch that finished jobs of theirs, where looking
every few milliseconds cost a waiting request more CPU than accepting its jobs (at 8 REST
clients, a quarter of the API's time).

A notification can be missed (the listener reconnecting, a path that finishes jobs without
notifying), so no wait depends on one: while the listener listens, a wait still looks every
``LISTENING_LOOK`` seconds; while it does not, every few milliseconds at first, as before.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable, Sequence

from ledger.db import Database
from ledger.jobs.model import FINISHED_CHANNEL, MAX_WAIT_SECONDS, PENDING, Job

log = logging.getLogger(__name__)

# How often a wait looks at its jobs anyway while notifications arrive.
LISTENING_LOOK = 0.25
# Without the listener: the first look soon (a lone job posts within milliseconds), then
# backing off to this.
POLL_FIRST, POLL_MOST = 0.002, 0.25
# The listener closes its connection once nobody has waited for this long.
IDLE_SECONDS = 10.0
# After a failed connection, the listener tries again after this long.
RECONNECT_SECONDS = 1.0


@dataclass(eq=False)
class _Wait:
    partitions: frozenset[int]
    woken: threading.Event = field(default_factory=threading.Event)


class Listener:
    """The waits of one process on one database, and the thread that wakes them."""

    def __init__(self, connect: Callable[[], object], idle_seconds: float = IDLE_SECONDS):
        self._connect = connect  # a new psycopg connection, in autocommit
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._waits: set[_Wait] = set()
        self._thread: threading.Thread | None = None
        self._idle_since = time.monotonic()
        self._listening: threading.Thread | None = None
        self.connections = 0  # opened so far (tests: a reconnect happened)

    @property
    def listening(self) -> bool:
        """Whether notifications arrive now (else the waits poll)."""
        return self._listening is not None and self._listening is self._thread

    def wait_for(self, read: Callable[[list[int]], list[Job]], jobs: Sequence[Job],
                 seconds: float) -> list[Job]:
        """The jobs as they are once none is pending, or ``seconds`` (capped) have passed;
        ``read(ids)`` reads jobs by id."""
        deadline = time.monotonic() + min(max(seconds, 0.0), MAX_WAIT_SECONDS)
        current = list(jobs)
        if not _pending(current) or seconds <= 0:
            return current
        wait = _Wait(frozenset(j.partition for j in current if j.status == PENDING))
        self._add(wait)
        try:
            pause = POLL_FIRST
            while True:
                # Cleared before the look: what finishes after it notifies, and wakes the
                # sleep below; what finished before (even before this wait was added, its
                # notification unheard) the look sees.
                wait.woken.clear()
                fresh = {j.id: j for j in read(_pending(current))}
                current = [fresh.get(j.id, j) for j in current]
                left = deadline - time.monotonic()
                if not _pending(current) or left <= 0:
                    return current
                if self.listening:
                    wait.woken.wait(min(LISTENING_LOOK, left))
                else:
                    wait.woken.wait(min(pause, left))
                    pause = min(pause * 1.5, POLL_MOST)
        finally:
            self._remove(wait)

    def _add(self, wait: _Wait) -> None:
        with self._lock:
            self._waits.add(wait)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="job-listener",
                                                daemon=True)
                self._thread.start()

    def _remove(self, wait: _Wait) -> None:
        with self._lock:
            self._waits.discard(wait)
            if not self._waits:
                self._idle_since = time.monotonic()

    def _wake(self, partition: int | None) -> None:
        """Wake the waits on ``partition`` (None: every wait)."""
        with self._lock:
            waits = list(self._waits)
        for wait in waits:
            if partition is None or partition in wait.partitions:
                wait.woken.set()

    def _idle(self, me: threading.Thread, seconds: float | None = None) -> bool:
        """True when thread ``me`` should stop: another took its place, or nobody has
        waited for ``seconds`` (``idle_seconds`` unless given); then it is forgotten, and
        the next wait starts one."""
        with self._lock:
            if self._thread is not me:
                return True
            idle = self.idle_seconds if seconds is None else seconds
            if self._waits or time.monotonic() - self._idle_since < idle:
                return False
            self._thread = None
            return True

    def _run(self) -> None:
        me = threading.current_thread()
        while not self._idle(me):
            try:
                self._listen(me)
            except Exception:  # noqa: BLE001 - the waits poll meanwhile; try again later
                if self._idle(me, 0):
                    return  # nobody waits: the next wait starts another
                log.warning("listening for finished jobs failed; waits poll until it is "
                            "back", exc_info=True)
                time.sleep(RECONNECT_SECONDS)

    def _listen(self, me: threading.Thread) -> None:
        conn = self._connect()
        self.connections += 1
        try:
            conn.execute("LISTEN " + FINISHED_CHANNEL)
            self._listening = me
            # Jobs may have finished before this connection listened: every wait looks.
            self._wake(None)
            while not self._idle(me):
                for note in conn.notifies(timeout=1.0):
                    self._wake(_partition(note.payload))
        finally:
            if self._listening is me:
                self._listening = None
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is being dropped anyway
                pass


def _partition(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None  # not ours to read: wake everyone rather than miss one


def _pending(jobs: Iterable[Job]) -> list[int]:
    return [j.id for j in jobs if j.status == PENDING]


_listeners: "weakref.WeakKeyDictionary[Database, Listener]" = weakref.WeakKeyDictionary()
_listeners_lock = threading.Lock()


def listener_of(db: Database) -> Listener:
    """The process's listener for ``db``'s database, made on first use."""
    with _listeners_lock:
        found = _listeners.get(db)
        if found is None:
            # By weak reference: the listener must not keep its database alive.
            found = _listeners[db] = Listener(partial(_listen_connection, weakref.ref(db)))
        return found


def _listen_connection(db_ref: "weakref.ref[Database]"):
    """A psycopg connection of its own (not the pool's: it is held for as long as anyone
    waits), in autocommit so that notifications arrive as they are sent."""
    db = db_ref()
    if db is None:
        raise RuntimeError("the database was dropped")
    raw = db.engine.raw_connection()
    conn = raw.driver_connection
    raw.detach()  # out of the pool: closing it closes it
    conn.autocommit = True
    return conn
