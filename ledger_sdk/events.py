"""Events and webhook endpoints in the SDK: the ordered ``events`` feed (poll with the
cursor it returns) and webhook endpoints create/list/delete. On both clients, like the other
mixins; a refused call raises the typed error naming the field."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger_sdk.operations import Operations
from ledger_sdk.types import parse_time

_ERR = "... on Error { code message retryable }"
_EVENT = "id type created ledger { ik } payload cursor"
_ENDPOINT = ("id url events description enabled disabledReason failures created "
             "ledger { ik }")

EVENTS = f"""query Events($after: String, $types: [String!], $ledger: String, $first: Int!) {{
  events(after: $after, types: $types, ledger: $ledger, first: $first) {{
    events {{ {_EVENT} }} endCursor }}
}}"""

ENDPOINTS = f"""query WebhookEndpoints {{ webhookEndpoints {{ {_ENDPOINT} }} }}"""

CREATE_ENDPOINT = f"""mutation CreateWebhookEndpoint($url: String!, $events: [String!]!,
  $description: String, $ledger: String) {{
  createWebhookEndpoint(url: $url, events: $events, description: $description,
                        ledger: $ledger) {{
    __typename ... on CreateWebhookEndpointResult {{ webhookEndpoint {{ {_ENDPOINT} }} secret }}
    {_ERR} }}
}}"""

DELETE_ENDPOINT = f"""mutation DeleteWebhookEndpoint($id: ID!) {{
  deleteWebhookEndpoint(id: $id) {{
    __typename ... on DeleteWebhookEndpointResult {{ webhookEndpoint {{ {_ENDPOINT} }} }}
    {_ERR} }}
}}"""


def _ik(d: dict | None) -> str | None:
    return (d or {}).get("ik")


@dataclass
class Event:
    id: str
    type: str
    created: datetime | None
    ledger_ik: str | None
    payload: Any
    cursor: str

    @classmethod
    def from_wire(cls, d: dict) -> "Event":
        return cls(id=d["id"], type=d["type"], created=parse_time(d.get("created")),
                   ledger_ik=_ik(d.get("ledger")), payload=d.get("payload"), cursor=d["cursor"])


@dataclass
class EventsPage:
    events: list[Event]
    # Pass back as ``after``; it stays the given cursor when nothing new was committed.
    end_cursor: str | None

    @classmethod
    def from_wire(cls, d: dict) -> "EventsPage":
        return cls(events=[Event.from_wire(e) for e in d["events"]], end_cursor=d["endCursor"])


@dataclass
class WebhookEndpoint:
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failures: int
    created: datetime | None
    ledger_ik: str | None
    # Only on the result of create: the signing secret is never shown again.
    secret: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: dict, secret: str | None = None) -> "WebhookEndpoint":
        return cls(id=d["id"], url=d["url"], events=list(d["events"]),
                   description=d.get("description"), enabled=d["enabled"],
                   disabled_reason=d.get("disabledReason"), failures=int(d["failures"]),
                   created=parse_time(d.get("created")), ledger_ik=_ik(d.get("ledger")),
                   secret=secret)


class EventsMixin(Operations):
    """Mixed into the SDK clients; see the module docstring."""

    def list_events(self, after: str | None = None, types: list[str] | None = None,
                    ledger: str | None = None, first: int = 100):
        """Events after the cursor ``after`` (None: from the start), oldest first and without
        gaps; ``types`` filters (e.g. ``["entry.posted"]``), ``ledger`` an ik narrows to one
        ledger (None: every ledger, not the client's ``ledger_ik``)."""
        if isinstance(first, bool) or not isinstance(first, int) or first < 1:
            raise ValueError(f"first: a positive integer, got {first!r}")
        return self._call(EVENTS, {"after": after, "types": types, "ledger": ledger,
                                   "first": first}, "events", EventsPage.from_wire)

    def create_webhook_endpoint(self, url: str, events: list[str], *,
                                description: str | None = None, ledger: str | None = None):
        """Deliver events of ``events`` (``["*"]``: all) to ``url``, signed per Standard
        Webhooks. The returned endpoint's ``secret`` is the only copy: keep it."""
        return self._call(CREATE_ENDPOINT, {"url": url, "events": list(events),
                                            "description": description, "ledger": ledger},
                          "createWebhookEndpoint",
                          lambda v: WebhookEndpoint.from_wire(v["webhookEndpoint"], v["secret"]))

    def list_webhook_endpoints(self):
        """Every webhook endpoint, without secrets."""
        return self._call(ENDPOINTS, {}, "webhookEndpoints",
                          lambda v: [WebhookEndpoint.from_wire(e) for e in v])

    def delete_webhook_endpoint(self, id: str):
        """Stop delivering to an endpoint; returns it as it was (its delivery log stays)."""
        return self._call(DELETE_ENDPOINT, {"id": id}, "deleteWebhookEndpoint",
                          lambda v: WebhookEndpoint.from_wire(v["webhookEndpoint"]))
