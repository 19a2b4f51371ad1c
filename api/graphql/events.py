"""GraphQL of events and webhooks: the ``events`` feed, and ``createWebhookEndpoint``,
``deleteWebhookEndpoint``, ``webhookEndpoints``. Each resolver is one `ledger.service` call."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional, Union

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.context import Context
from api.graphql.errors import BadRequestError, InternalError, mutate
from ledger import service


@strawberry.type
class EventLedger:
    ik: str


@strawberry.type
class Event:
    id: strawberry.ID
    type: str
    created: datetime
    ledger: Optional[EventLedger]
    payload: JSON
    cursor: str


@strawberry.type
class EventsPage:
    events: list[Event]
    end_cursor: Optional[str] = strawberry.field(
        description="Pass as `after` to read what follows; the one given when none was new.")


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    events: list[str]
    description: Optional[str]
    enabled: bool
    disabled_reason: Optional[str]
    failures: int
    created: datetime
    ledger: Optional[EventLedger]


def endpoint_type(found: service.WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint(id=strawberry.ID(found.id), url=found.url, events=found.events,
                           description=found.description, enabled=found.enabled,
                           disabled_reason=found.disabled_reason, failures=found.failures,
                           created=found.created,
                           ledger=EventLedger(ik=found.ledger_ik) if found.ledger_ik else None)


@strawberry.type
class CreateWebhookEndpointResult:
    webhook_endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="The signing secret (Standard Webhooks, "
                                   "whsec_...). Shown this once: keep it.")


@strawberry.type
class DeleteWebhookEndpointResult:
    webhook_endpoint: WebhookEndpoint


CreateWebhookEndpointResponse = Annotated[
    Union[CreateWebhookEndpointResult, BadRequestError, InternalError],
    strawberry.union("CreateWebhookEndpointResponse")]
DeleteWebhookEndpointResponse = Annotated[
    Union[DeleteWebhookEndpointResult, BadRequestError, InternalError],
    strawberry.union("DeleteWebhookEndpointResponse")]


@strawberry.type
class EventQuery:
    @strawberry.field(description="Events after the cursor `after`, oldest first, without "
                                  "gaps: an event committed late comes after those read.")
    def events(self, info: Info, after: Optional[str] = None,
               types: Optional[list[str]] = None, ledger: Optional[str] = None,
               first: int = 100) -> EventsPage:
        ctx: Context = info.context
        page = service.list_events(ctx.db, after=after, types=types, ledger_ik=ledger,
                                   first=first)
        return EventsPage(events=[Event(
            id=strawberry.ID(e.id), type=e.type, created=e.created,
            ledger=EventLedger(ik=e.ledger_ik) if e.ledger_ik else None, payload=e.payload,
            cursor=e.cursor) for e in page.events], end_cursor=page.end_cursor)

    @strawberry.field(description="The webhook endpoints (secrets are never shown again).")
    def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        ctx: Context = info.context
        return [endpoint_type(e) for e in service.list_webhook_endpoints(ctx.db)]


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Deliver events of the types `events` ([\"*\"]: all) "
                                     "raised from now on (of one ledger when `ledger` is "
                                     "given) to `url`, signed (Standard Webhooks).")
    def create_webhook_endpoint(self, info: Info, url: str, events: list[str],
                                description: Optional[str] = None,
                                ledger: Optional[str] = None) -> CreateWebhookEndpointResponse:
        ctx: Context = info.context

        def run():
            made = service.create_webhook_endpoint(ctx.db, ctx.settings, url=url,
                                                   events=events, description=description,
                                                   ledger_ik=ledger)
            return CreateWebhookEndpointResult(webhook_endpoint=endpoint_type(made.endpoint),
                                               secret=made.secret)

        return mutate(info, run)

    @strawberry.mutation(description="Stop delivering to an endpoint; its log stays.")
    def delete_webhook_endpoint(self, info: Info, id: strawberry.ID
                                ) -> DeleteWebhookEndpointResponse:
        ctx: Context = info.context
        return mutate(info, lambda: DeleteWebhookEndpointResult(
            webhook_endpoint=endpoint_type(service.delete_webhook_endpoint(ctx.db, str(id)))))
