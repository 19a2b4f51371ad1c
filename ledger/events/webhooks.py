"""Webhook endpoints: where events are delivered (ledger/events/delivery.py says how).

An endpoint subscribes to event types ("*": every type) and starts at the head of the feed
(``feed_head``): it receives what is raised after it was created, and may receive events
committed shortly before, which the feed could not call final yet (a transaction older than
theirs was still running, in any database of the server). Its signing secret (Standard Webhooks,
``whsec_<base64>``) is returned once, when it is created, and kept encrypted with the
deployment's key (ledger/secrets.py); it is never shown again.
"""
from __future__ import annotations

import base64
import ipaddress
import secrets as random_secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.db import Database
from ledger.errors import BadRequestError, NotFoundError
from ledger.events.store import TYPES, feed_head, raise_event
from ledger.ledgers import load_ledger
from ledger.secrets import Keyring
from ledger.text import check_storable

ALL_TYPES = "*"
MAX_URL = 2000
MAX_DESCRIPTION = 1000
MAX_DELIVERY_PAGE = 200


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str                 # "we_<n>"
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failures: int
    next_attempt: datetime
    created: datetime
    ledger_ik: str | None = None   # only this ledger's events; None: every event


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str             # shown once


@dataclass(frozen=True)
class Delivery:
    id: str                 # "whd_<n>"
    endpoint_id: str
    event_id: str
    attempt: int
    manual: bool
    ok: bool
    status: int | None
    latency_ms: int
    response: str | None
    error: str | None
    created: datetime


def endpoint_id(value: Any, field: str = "id") -> int:
    text = str(value)
    number = text[3:] if text.startswith("we_") else text
    if not (number.isascii() and number.isdigit()) or number.startswith("0") \
            or not 0 < int(number) < 2**63:
        raise NotFoundError("webhook_endpoint_not_found",
                            f"{field}: no webhook endpoint {value!r}", field=field)
    return int(number)


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return not ip.is_global or ip.is_multicast


def check_url(url: Any, allow_private: bool, field: str = "url") -> str:
    """The URL if events may be sent to it: http or https with a host and, unless
    ``allow_private``, a host that resolves to public addresses only (no requests into the
    deployment's own network). Checked again at each delivery: DNS may change."""
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL:
        raise BadRequestError("invalid_input", f"{field}: expected an http or https URL of at "
                              f"most {MAX_URL} characters", field=field)
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise BadRequestError("invalid_input", f"{field}: not a URL", field=field) from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadRequestError("invalid_url", f"{field}: only http and https URLs with a host "
                              f"can receive events, got {url!r}", field=field)
    if parts.username or parts.password:
        raise BadRequestError("invalid_url", f"{field}: credentials in the URL are not "
                              "accepted; verify deliveries with the signing secret", field=field)
    if not allow_private:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except (socket.gaierror, UnicodeError):
            raise BadRequestError("invalid_url", f"{field}: the host {host!r} does not "
                                  "resolve", field=field) from None
        blocked = sorted(a for a in addresses if _private(a))
        if blocked:
            raise BadRequestError(
                "invalid_url", f"{field}: {host!r} resolves to a private, loopback or "
                f"reserved address ({blocked[0]}); set LEDGER_WEBHOOK_ALLOW_PRIVATE=true to "
                "allow it", field=field)
    return url.strip()


def check_types(events: Any, field: str = "events") -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise BadRequestError("invalid_input", f"{field}: expected a non-empty list of event "
                              f"types, or [\"*\"] for every type", field=field)
    unknown = sorted(set(events) - TYPES - {ALL_TYPES})
    if unknown:
        raise BadRequestError("invalid_input", f"{field}: unknown event type {unknown[0]!r}; "
                              f"known: {', '.join(sorted(TYPES))}, or *", field=field)
    return sorted(set(events))


_ENDPOINT_COLUMNS = ("id, url, types, description, enabled, disabled_reason, failures, "
                     "next_attempt, created, (SELECT g.ik FROM ledgers g "
                     "WHERE g.id = webhook_endpoints.ledger_id) AS ledger_ik")


def _endpoint(r) -> WebhookEndpoint:
    return WebhookEndpoint(f"we_{r.id}", r.url, list(r.types), r.description, r.enabled,
                           r.disabled_reason, r.failures, r.next_attempt, r.created,
                           r.ledger_ik)


def create_endpoint(db: Database, keyring: Keyring, *, url: Any, events: Any,
                    description: Any = None, ledger_ik: Any = None,
                    allow_private: bool = False) -> CreatedEndpoint:
    url = check_url(url, allow_private)
    types = check_types(events)
    if description is not None and (not isinstance(description, str)
                                    or len(description) > MAX_DESCRIPTION):
        raise BadRequestError("invalid_input", f"description: expected a string of at most "
                              f"{MAX_DESCRIPTION} characters", field="description")
    if description is not None:
        check_storable(description, "description")
    secret = "whsec_" + base64.b64encode(random_secrets.token_bytes(32)).decode()
    stored = keyring.encrypt(secret)

    def run(conn: Connection) -> WebhookEndpoint:
        ledger = load_ledger(conn, ledger_ik) if ledger_ik is not None else None
        row = conn.execute(sa.text(
            "INSERT INTO webhook_endpoints (url, types, description, secret, cursor, ledger_id) "
            "VALUES (:url, :types, :d, :s, :c, :l) RETURNING " + _ENDPOINT_COLUMNS),
            {"url": url, "types": types, "d": description, "s": stored,
             "c": feed_head(conn), "l": ledger.id if ledger else None}).one()
        return _endpoint(row)

    return CreatedEndpoint(db.run(run), secret)


def list_endpoints(db: Database) -> list[WebhookEndpoint]:
    def run(conn: Connection):
        return [_endpoint(r) for r in conn.execute(sa.text(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE deleted IS NULL "
            "ORDER BY id"))]
    return db.run(run)


def get_endpoint(conn: Connection, endpoint: Any, *, lock: bool = False):
    """The endpoint's row (all columns); NotFoundError when there is none (or deleted)."""
    row = conn.execute(sa.text(
        "SELECT * FROM webhook_endpoints WHERE id = :id AND deleted IS NULL"
        + (" FOR UPDATE" if lock else "")), {"id": endpoint_id(endpoint)}).one_or_none()
    if row is None:
        raise NotFoundError("webhook_endpoint_not_found",
                            f"id: no webhook endpoint {endpoint!r}", field="id")
    return row


def delete_endpoint(db: Database, endpoint: Any) -> WebhookEndpoint:
    """Stop delivering to the endpoint; its delivery log stays."""
    def run(conn: Connection) -> WebhookEndpoint:
        get_endpoint(conn, endpoint, lock=True)
        return _endpoint(conn.execute(sa.text(
            "UPDATE webhook_endpoints SET deleted = now(), enabled = false WHERE id = :id "
            "RETURNING " + _ENDPOINT_COLUMNS), {"id": endpoint_id(endpoint)}).one())
    return db.run(run)


def enable_endpoint(db: Database, endpoint: Any) -> WebhookEndpoint:
    """Enable a disabled endpoint again: delivery resumes at the event that failed."""
    def run(conn: Connection) -> WebhookEndpoint:
        get_endpoint(conn, endpoint, lock=True)
        return _endpoint(conn.execute(sa.text(
            "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL, failures = 0, "
            "next_attempt = now() WHERE id = :id RETURNING " + _ENDPOINT_COLUMNS),
            {"id": endpoint_id(endpoint)}).one())
    return db.run(run)


def disable(conn: Connection, row, reason: str) -> None:
    """Disable an endpoint after a run of failures, with the event saying so."""
    conn.execute(sa.text("UPDATE webhook_endpoints SET enabled = false, disabled_reason = :r "
                         "WHERE id = :id"), {"id": row.id, "r": reason})
    raise_event(conn, ledger_id=None, type="webhook_endpoint.disabled", payload={
        "id": f"we_{row.id}", "url": row.url, "reason": reason})


def list_deliveries(db: Database, endpoint: Any, *, first: int = 50) -> list[Delivery]:
    """The endpoint's delivery attempts, newest first."""
    if not isinstance(first, int) or not 1 <= first <= MAX_DELIVERY_PAGE:
        raise BadRequestError("invalid_input", f"first: between 1 and {MAX_DELIVERY_PAGE}",
                              field="first")

    def run(conn: Connection) -> list[Delivery]:
        get_endpoint(conn, endpoint)
        return [Delivery(f"whd_{r.id}", f"we_{r.endpoint_id}", f"evt_{r.event_id}",
                         r.attempt, r.manual, r.ok, r.status, r.latency_ms, r.response,
                         r.error, r.created)
                for r in conn.execute(sa.text(
                    "SELECT * FROM webhook_deliveries WHERE endpoint_id = :id "
                    "ORDER BY id DESC LIMIT :n"), {"id": endpoint_id(endpoint), "n": first})]
    return db.run(run)
