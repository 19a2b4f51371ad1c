"""``ledger webhooks ...``: webhook endpoints, straight in the database: create (the
signing secret printed once), list, delete, enable, the delivery log, redelivery."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Optional

import typer

from api.cli.common import (AdminDatabase, DataDir, JsonOut, emit_json, err, out, run, run_admin,
                            service)

webhooks_app = typer.Typer(help="Webhook endpoints: create, list, delete, enable, "
                                "deliveries, redeliver.", no_args_is_help=True)

EndpointId = Annotated[str, typer.Argument(help="The endpoint's id (we_...).")]


def _line(e) -> str:
    state = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
    return (f"{e.id}  {state}  {','.join(e.events)}  {e.ledger_ik or '*'}  {e.url}"
            + (f"  {e.description}" if e.description else ""))


@webhooks_app.command("create")
def create(ctx: typer.Context, url: Annotated[str, typer.Option("--url", help="Where to POST "
                                                                "events (http or https).")],
           events: Annotated[list[str], typer.Option(
               "--event", help="An event type to deliver (repeatable); * for every type.")],
           description: Annotated[Optional[str], typer.Option("--description")] = None,
           ledger: Annotated[Optional[str], typer.Option(
               "--ledger", help="Only this ledger's events (its ik); default: every event.")] = None,
           data_dir: DataDir = None, as_json: JsonOut = False):
    """Create an endpoint; its signing secret is printed once, here, and never again."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            made = run_admin(lambda: service.create_webhook_endpoint(
                admin.db, admin.config, url=url, events=list(events), description=description,
                ledger_ik=ledger))
        if as_json:
            emit_json({**asdict(made.endpoint), "secret": made.secret})
            return
        # Plain lines: a table cell narrower than the secret would cut it.
        for label, value in (("id", made.endpoint.id), ("secret", made.secret),
                             ("url", made.endpoint.url),
                             ("events", ",".join(made.endpoint.events))):
            out.print(f"{label + ':':<8}{value}", highlight=False, markup=False, soft_wrap=True)
        err.print("Store the secret now (it verifies the webhook-signature header): it is "
                  "kept encrypted and cannot be shown again.")

    run(body)


@webhooks_app.command("list")
def list_(ctx: typer.Context, data_dir: DataDir = None, as_json: JsonOut = False):
    """List endpoints (never their secrets)."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            found = run_admin(lambda: service.list_webhook_endpoints(admin.db))
        if as_json:
            emit_json([asdict(e) for e in found])
            return
        for e in found:
            out.print(_line(e), highlight=False, markup=False, soft_wrap=True)
        if not found:
            err.print("no webhook endpoints (create one: ledger webhooks create --url URL "
                      "--event entry.posted)")

    run(body)


def _change(ctx: typer.Context, change, data_dir, as_json: bool, say) -> None:
    """Run ``change(db, endpoint)`` and print what it answers."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            found = run_admin(lambda: change(admin.db))
        if as_json:
            emit_json(asdict(found))
        else:
            out.print(say(found), highlight=False, markup=False, soft_wrap=True)

    run(body)


@webhooks_app.command("delete")
def delete(ctx: typer.Context, endpoint: EndpointId, data_dir: DataDir = None,
           as_json: JsonOut = False):
    """Stop delivering to an endpoint; its delivery log stays."""
    _change(ctx, lambda db: service.delete_webhook_endpoint(db, endpoint), data_dir, as_json,
            lambda gone: f"Deleted {gone.id} ({gone.url})")


@webhooks_app.command("enable")
def enable(ctx: typer.Context, endpoint: EndpointId, data_dir: DataDir = None,
           as_json: JsonOut = False):
    """Enable a disabled endpoint: delivery resumes at the event that failed."""
    _change(ctx, lambda db: service.enable_webhook_endpoint(db, endpoint), data_dir, as_json,
            _line)


@webhooks_app.command("deliveries")
def deliveries(ctx: typer.Context, endpoint: EndpointId,
               first: Annotated[int, typer.Option("--first", help="How many, newest first "
                                                  "(at most 200).")] = 50,
               data_dir: DataDir = None, as_json: JsonOut = False):
    """The endpoint's delivery attempts: status, latency, response excerpt, error."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            found = run_admin(lambda: service.list_webhook_deliveries(admin.db, endpoint,
                                                                      first=first))
        if as_json:
            emit_json([asdict(d) for d in found])
            return
        for d in found:
            outcome = "ok" if d.ok else f"FAILED {d.error}"
            out.print(f"{d.id}  {d.created.isoformat(timespec='seconds')}  {d.event_id}  "
                      f"attempt {d.attempt}{' (manual)' if d.manual else ''}  "
                      f"{d.status if d.status is not None else '-'}  {d.latency_ms} ms  "
                      f"{outcome}", highlight=False, markup=False, soft_wrap=True)
        if not found:
            err.print(f"no deliveries to {endpoint} yet")

    run(body)


@webhooks_app.command("redeliver")
def redeliver(ctx: typer.Context, endpoint: EndpointId,
              event: Annotated[str, typer.Argument(help="The event's id (evt_...).")],
              data_dir: DataDir = None, as_json: JsonOut = False):
    """Send one event to the endpoint again now (logged as a manual attempt)."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            made = run_admin(lambda: service.redeliver_webhook_event(
                admin.db, admin.config, endpoint, event))
        if as_json:
            emit_json(asdict(made))
        else:
            out.print(f"{made.id}  {made.event_id} -> {made.endpoint_id}: "
                      f"{'ok' if made.ok else 'FAILED ' + str(made.error)} "
                      f"({made.status if made.status is not None else '-'}, "
                      f"{made.latency_ms} ms)", highlight=False, markup=False)
        if not made.ok:
            raise typer.Exit(1)

    run(body)
