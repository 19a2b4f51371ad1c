"""Delivering events to webhook endpoints: at least once, in feed order, signed.

Each endpoint keeps a cursor over the event feed (ledger/events/store.py), so it receives
events in the feed's order, which keeps every ledger's events in order. One process at a
time delivers to an endpoint: a session advisory lock, taken on a connection of its own and
released when the run ends or the process dies. No transaction stays open during an HTTP
request: one open would hold back every reader of the feed, as the feed waits for the
oldest running transaction. An event is marked delivered (the cursor moves past it) only
after the receiver answered 2xx; a process killed in between leaves the cursor where it
was, and the next run sends the same event again with the same ``webhook-id`` (the event's
id), which is how receivers deduplicate.

A failed attempt (no answer, or not 2xx) is logged and the endpoint waits before the next:
``LEDGER_WEBHOOK_BACKOFF_SECONDS``, four times as long after each further failure, at most
12 hours; after ``LEDGER_WEBHOOK_DISABLE_AFTER`` failures in a row (12 by default: about
three days) the endpoint is disabled, with a ``webhook_endpoint.disabled`` event. Later
events wait behind the failing one: the order holds.

Signatures follow Standard Webhooks (``standardwebhooks``): ``webhook-signature`` is
``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from standardwebhooks.webhooks import Webhook

from ledger import fastjson
from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.events.store import Event, read_events
from ledger.events.webhooks import ALL_TYPES, Delivery, check_url, disable, endpoint_id, get_endpoint
from ledger.secrets import Keyring
from ledger.settings import Settings

# "LW": ledger webhooks, so these advisory locks collide with nobody else's.
_LOCK_NAMESPACE = 0x4C57
MAX_BACKOFF_SECONDS = 12 * 3600
TIMEOUT_SECONDS = 10.0
RESPONSE_EXCERPT = 500
PAGE = 100

# post(url, body, headers) -> (status, response text); raises httpx.HTTPError on no answer.
Post = Callable[[str, bytes, dict], tuple[int, str]]


def http_post(url: str, body: bytes, headers: dict) -> tuple[int, str]:
    # No redirects: a 3xx to an internal address would bypass the URL check.
    response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS,
                          follow_redirects=False)
    return response.status_code, response.text[:RESPONSE_EXCERPT]


@dataclass
class DeliveryRun:
    endpoint_id: str
    busy: bool = False          # another process holds the endpoint
    delivered: int = 0
    failed: int = 0
    disabled: bool = False
    skipped: int = 0            # events of types the endpoint does not subscribe to
    errors: list[str] = field(default_factory=list)


def backoff_seconds(failures: int, base: float) -> float:
    return min(MAX_BACKOFF_SECONDS, base * 4 ** max(0, failures - 1))


def body_of(event: Event) -> bytes:
    # The event's id beside type and timestamp: data.id is the payload's own (an entry's).
    return fastjson.dumps({"id": event.id, "type": event.type, "timestamp": event.created,
                           "data": {"ledger": event.ledger_ik, **event.payload}}).encode()


def signed_headers(secret: str, event_id: str, body: bytes,
                   now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(timezone.utc)
    return {"content-type": "application/json", "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(event_id, now, body.decode())}


def _attempt(settings: Settings, secret: str, url: str, event: Event, post: Post) -> dict:
    """Send one event; what to log of it. Never raises for the receiver's faults."""
    body = body_of(event)
    started = time.perf_counter()
    outcome: dict[str, Any] = {"status": None, "response": None, "error": None}
    try:
        check_url(url, settings.webhook_allow_private)
        status, text = post(url, body, signed_headers(secret, event.id, body))
        outcome.update(status=status, response=text)
        if not 200 <= status < 300:
            outcome["error"] = f"HTTP {status}"
    except BadRequestError as exc:
        outcome["error"] = exc.message
    except (httpx.HTTPError, OSError) as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT]
    outcome["latency_ms"] = int((time.perf_counter() - started) * 1000)
    outcome["ok"] = outcome["error"] is None
    return outcome


def _log(conn: Connection, endpoint: int, event: Event, attempt: int, manual: bool,
         outcome: dict) -> int:
    return conn.execute(sa.text(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, attempt, manual, ok, status, "
        "latency_ms, response, error) VALUES (:e, :v, :a, :m, :ok, :s, :l, :r, :x) "
        "RETURNING id"),
        {"e": endpoint, "v": int(event.id[4:]), "a": attempt, "m": manual, "ok": outcome["ok"],
         "s": outcome["status"], "l": outcome["latency_ms"], "r": outcome["response"],
         "x": outcome["error"]}).scalar_one()


def deliver_endpoint(db: Database, keyring: Keyring, settings: Settings, endpoint: Any, *,
                     post: Post = http_post, budget_seconds: float = 20.0) -> DeliveryRun:
    """Deliver the endpoint's pending events in order, until none is left, one fails, or
    the budget runs out; ``busy`` when another process is delivering to it."""
    ident = endpoint_id(endpoint)
    run = DeliveryRun(f"we_{ident}")
    with db.engine.connect() as lock:
        if not lock.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :id)"),
                            {"ns": _LOCK_NAMESPACE, "id": ident}).scalar():
            lock.rollback()
            run.busy = True
            return run
        lock.commit()  # the session lock stays; no transaction stays open
        try:
            _deliver_locked(db, keyring, settings, ident, post, run,
                            time.monotonic() + budget_seconds)
        except NotFoundError:
            pass  # deleted meanwhile: nothing more to deliver
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:ns, :id)"),
                         {"ns": _LOCK_NAMESPACE, "id": ident})
            lock.commit()
    return run


def _deliver_locked(db: Database, keyring: Keyring, settings: Settings, ident: int,
                    post: Post, run: DeliveryRun, deadline: float) -> None:
    while time.monotonic() < deadline:
        with db.transaction() as conn:
            row = get_endpoint(conn, ident)
            # The database's clock, the one that set next_attempt (see _record).
            if not row.enabled or conn.execute(sa.text("SELECT :t > now()"),
                                               {"t": row.next_attempt}).scalar():
                return
            page = read_events(conn, after=row.cursor, ledger_id=row.ledger_id, first=PAGE)
        if not page.events:
            return
        wanted, secret = set(row.types), keyring.decrypt(row.secret)
        stored = last = row.cursor
        for event in page.events:
            last = event.cursor
            if ALL_TYPES not in wanted and event.type not in wanted:
                run.skipped += 1
                continue
            outcome = _attempt(settings, secret, row.url, event, post)
            if not _record(db, settings, ident, stored, event, outcome, run):
                return
            stored = event.cursor
            if time.monotonic() > deadline:
                return
        if last != stored:  # events passed over as not subscribed: not read again
            _move(db, ident, stored, last)


def _move(db: Database, ident: int, old: str, new: str) -> None:
    # Compare-and-set on the cursor: the lock makes us the only writer, this makes sure.
    with db.transaction() as conn:
        conn.execute(sa.text("UPDATE webhook_endpoints SET cursor = :new "
                             "WHERE id = :id AND cursor = :old"),
                     {"id": ident, "old": old, "new": new})


def _record(db: Database, settings: Settings, ident: int, cursor: str, event: Event,
            outcome: dict, run: DeliveryRun) -> bool:
    """Log the attempt and move the endpoint on (delivered) or back off (failed), in one
    transaction; whether delivery goes on."""
    with db.transaction() as conn:
        row = get_endpoint(conn, ident, lock=True)
        if row.cursor != cursor or not row.enabled:  # deleted or disabled meanwhile
            return False
        _log(conn, ident, event, row.failures + 1, False, outcome)
        if outcome["ok"]:
            conn.execute(sa.text("UPDATE webhook_endpoints SET cursor = :c, failures = 0 "
                                 "WHERE id = :id"), {"id": ident, "c": event.cursor})
            run.delivered += 1
            return True
        failures = row.failures + 1
        run.failed += 1
        run.errors.append(outcome["error"])
        wait = timedelta(seconds=backoff_seconds(failures, settings.webhook_backoff_seconds))
        conn.execute(sa.text(
            "UPDATE webhook_endpoints SET failures = :f, next_attempt = now() + :w "
            "WHERE id = :id"), {"id": ident, "f": failures, "w": wait})
        if failures >= settings.webhook_disable_after:
            disable(conn, row, f"{failures} deliveries failed in a row, the last: "
                               f"{outcome['error']}")
            run.disabled = True
        return False


def due_endpoints(db: Database) -> list[str]:
    """Enabled endpoints whose backoff has run out (they may have nothing to deliver)."""
    def read(conn: Connection) -> list[str]:
        return [f"we_{i}" for i in conn.execute(sa.text(
            "SELECT id FROM webhook_endpoints WHERE enabled AND deleted IS NULL "
            "AND next_attempt <= now() ORDER BY id")).scalars()]
    return db.run(read)


def redeliver(db: Database, keyring: Keyring, settings: Settings, endpoint: Any,
              event: Any, *, post: Post = http_post) -> Delivery:
    """Send one event to the endpoint again now, out of band (its cursor does not move),
    and log the attempt as manual. Works on a disabled endpoint too: to test it."""
    ident = endpoint_id(endpoint)
    number = str(event)[4:] if str(event).startswith("evt_") else str(event)
    if not (number.isascii() and number.isdigit()) or not 0 < int(number) < 2**63:
        raise NotFoundError("event_not_found", f"event: no event {event!r}", field="event")
    with db.transaction() as conn:
        row = get_endpoint(conn, ident)
        found = conn.execute(sa.text(
            "SELECT e.id, e.type, e.created, g.ik, e.payload FROM events e "
            "LEFT JOIN ledgers g ON g.id = e.ledger_id WHERE e.id = :id"),
            {"id": int(number)}).one_or_none()
    if found is None:
        raise NotFoundError("event_not_found", f"event: no event {event!r}", field="event")
    the_event = Event(f"evt_{found.id}", found.type, found.created, found.ik, found.payload, "")
    outcome = _attempt(settings, keyring.decrypt(row.secret), row.url, the_event, post)
    with db.transaction() as conn:
        delivery_id = _log(conn, ident, the_event, 1, True, outcome)
    return Delivery(f"whd_{delivery_id}", f"we_{ident}", the_event.id, 1, True, outcome["ok"],
                    outcome["status"], outcome["latency_ms"], outcome["response"],
                    outcome["error"], datetime.now(timezone.utc))
