"""``ledger monitors ...``: balance monitors (create, list, update, delete) through the API
(the SDK), like the other API commands."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from api.cli.common import (EXIT_USAGE, ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret,
                            JsonOut, api_client, emit_json, fail, folding_table, out, run)
from ledger_sdk import condition_input

monitors_app = typer.Typer(help="Balance monitors: raise balance.crossed when a balance "
                                "crosses a condition.", no_args_is_help=True)

Balance = Annotated[Optional[str], typer.Option(
    "--balance", help="own, child (the sum of the descendants') or total (own + child), "
    "posted; ownPending, childPending, totalPending (posted plus every pending hold line) or "
    "ownAvailable, childAvailable, totalAvailable (posted plus the pending decreases).")]
Currency = Annotated[Optional[str], typer.Option(
    "--currency", help="Only this currency (default: each currency on its own).")]
Description = Annotated[Optional[str], typer.Option("--description")]
Lt = Annotated[Optional[str], typer.Option("--lt", help="Amount in minor units: balance < it.")]
Lte = Annotated[Optional[str], typer.Option("--lte", help="balance <= amount")]
Gt = Annotated[Optional[str], typer.Option("--gt", help="balance > amount")]
Gte = Annotated[Optional[str], typer.Option("--gte", help="balance >= amount")]
Eq = Annotated[Optional[str], typer.Option("--eq", help="balance == amount")]
MonitorId = Annotated[str, typer.Argument(help="The monitor's id.")]


def _op(given: dict, currency: Optional[str], required: bool) -> Optional[tuple[str, str]]:
    """The one (operator, amount) given among --lt ... --eq, or None when none is."""
    ops = [(op, v) for op, v in given.items() if v is not None]
    if len(ops) > 1:
        fail(f"give only one of --lt, --lte, --gt, --gte, --eq (got "
             f"{', '.join('--' + op for op, _ in ops)})", EXIT_USAGE)
    if not ops and (required or currency is not None):
        fail("give one of --lt, --lte, --gt, --gte, --eq"
             + (" with --currency" if currency is not None else ""), EXIT_USAGE)
    return ops[0] if ops else None


def _json(m) -> dict:
    return {"id": m.id, "ledger": m.ledger_ik, "account": m.account, "balance": m.balance,
            "condition": {m.op: str(m.amount), "currency": m.currency},
            "description": m.description,
            "created": m.created.isoformat() if m.created else None,
            "updated": m.updated.isoformat() if m.updated else None}


def _print(monitors: list, as_json: bool) -> None:
    if as_json:
        emit_json({"monitors": [_json(m) for m in monitors]})
        return
    table = folding_table("id", "account", "balance", "condition", "description")
    for m in monitors:
        table.add_row(m.id, m.account, m.balance,
                      f"{m.op} {m.amount}" + (f" {m.currency}" if m.currency else ""),
                      m.description or "")
    out.print(table)


@monitors_app.command("create")
def create(ctx: typer.Context,
           account: Annotated[str, typer.Argument(
               help="Account path, template node or pattern (liabilities/users:*/available).")],
           ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
           balance: Balance = "own", lt: Lt = None, lte: Lte = None, gt: Gt = None,
           gte: Gte = None, eq: Eq = None, currency: Currency = None,
           description: Description = None, api_url: ApiUrl = None,
           client_id: ClientId = None, client_secret: ClientSecret = None,
           auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Create a monitor on a balance.

    E.g. `ledger monitors create liabilities/users:*/available --ledger wallet --lt 1000
    --currency USD`."""
    def body():
        op, amount = _op({"lt": lt, "lte": lte, "gt": gt, "gte": gte, "eq": eq}, currency,
                         required=True)
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as c:
            made = c.create_balance_monitor(account, balance, op, amount, currency=currency,
                                            description=description, ledger=ledger)
        _print([made], as_json)

    run(body)


@monitors_app.command("list")
def list_(ctx: typer.Context,
          ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
          api_url: ApiUrl = None, client_id: ClientId = None,
          client_secret: ClientSecret = None, auth_url: AuthUrl = None,
          auth_scope: AuthScope = None, as_json: JsonOut = False):
    """The ledger's monitors, oldest first."""
    def body():
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as c:
            found = c.list_balance_monitors(ledger)
        _print(found, as_json)

    run(body)


@monitors_app.command("update")
def update(ctx: typer.Context, id: MonitorId,
           account: Annotated[Optional[str], typer.Option("--account")] = None,
           balance: Balance = None, lt: Lt = None, lte: Lte = None, gt: Gt = None,
           gte: Gte = None, eq: Eq = None, currency: Currency = None,
           description: Description = None, api_url: ApiUrl = None,
           client_id: ClientId = None, client_secret: ClientSecret = None,
           auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Change a monitor; what is not given stays (a new condition replaces the old whole)."""
    def body():
        given = _op({"lt": lt, "lte": lte, "gt": gt, "gte": gte, "eq": eq}, currency,
                    required=False)
        cond = condition_input(*given, currency) if given else None
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as c:
            changed = c.update_balance_monitor(id, account=account, balance=balance,
                                               condition=cond, description=description)
        _print([changed], as_json)

    run(body)


@monitors_app.command("delete")
def delete(ctx: typer.Context, id: MonitorId, api_url: ApiUrl = None,
           client_id: ClientId = None, client_secret: ClientSecret = None,
           auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Delete a monitor."""
    def body():
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as c:
            gone = c.delete_balance_monitor(id)
        _print([gone], as_json)

    run(body)
