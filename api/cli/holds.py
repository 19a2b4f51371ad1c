"""``ledger hold create|commit|void|show``: holds (two-phase posting) through the API (the
SDK), like the other API commands."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from api.cli.common import (EXIT_USAGE, ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret,
                            JsonOut, api_client, emit_json, entry_json, fail, json_option,
                            key_values, lines_table, out, run)

hold_app = typer.Typer(help="Holds: post an entry whose lines stay pending (reserving "
                            "available balance) until committed, voided or expired.",
                       no_args_is_help=True)

Ledger = Annotated[Optional[str], typer.Option("--ledger", help="The ledger's ik.")]
Id = Annotated[Optional[str], typer.Option("--id", help="The hold's entry id.")]
Ik = Annotated[Optional[str], typer.Option("--ik", help="Or the entry's ik (with --ledger).")]


def _json(result) -> dict:
    h = result.hold
    return {"status": h.status, "expiresAt": h.expires_at.isoformat(),
            "created": h.created.isoformat(),
            "resolvedAt": h.resolved_at.isoformat() if h.resolved_at else None,
            "heldLines": [{"key": l.key, "account": l.account_path, "amount": str(l.amount),
                           "currency": l.currency} for l in h.lines],
            "entry": entry_json(result.entry, result.is_ik_replay)}


def _print(result, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(_json(result))
        return
    h = result.hold
    replay = " (replay)" if result.is_ik_replay else ""
    out.print(f"{verb} hold {result.entry.id} ik={result.entry.ik}: {h.status}, expires "
              f"{h.expires_at.isoformat()}{replay}", highlight=False, markup=False)
    out.print("Reserved:" if h.status == "pending" else "Reserved (released):",
              highlight=False)
    out.print(lines_table(h.lines))
    if result.entry.lines:
        out.print("Posted:", highlight=False)
        out.print(lines_table(result.entry.lines))


def _target(id: Optional[str], ik: Optional[str], ledger: Optional[str]) -> None:
    if (id is None) == (ik is None):
        fail("give the hold's --id, or its --ik and --ledger", EXIT_USAGE)
    if ik is not None and ledger is None:
        fail("--ik needs --ledger", EXIT_USAGE)


@hold_app.command("create")
def create(ctx: typer.Context,
           ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
           type: Annotated[str, typer.Option("--type", help="Entry type of the schema.")],
           ik: Annotated[str, typer.Option("--ik", help="Idempotency key: reuse it to retry.")],
           expires_at: Annotated[str, typer.Option(
               "--expires-at", help="ISO 8601 time in the future: voided then.")],
           param: Annotated[Optional[list[str]], typer.Option(
               "--param", "-p", help="Parameter KEY=VALUE (repeatable).")] = None,
           parameters: Annotated[Optional[str], typer.Option(
               "--parameters", help="Parameters as a JSON object.")] = None,
           lines: Annotated[Optional[str], typer.Option(
               "--lines", help="Runtime lines as a JSON list.")] = None,
           api_url: ApiUrl = None, client_id: ClientId = None,
           client_secret: ClientSecret = None, auth_url: AuthUrl = None,
           auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Post an entry as a hold. E.g. `ledger hold create --ledger wallet --type transfer
    --ik auth-1 -p from_id=alice -p to_id=shop -p amount=100 --expires-at
    2030-01-01T00:00:00Z`."""
    def body():
        values = dict(json_option(parameters, "--parameters") or {})
        values.update(key_values(param, "--param"))
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as c:
            made = c.add_ledger_hold(ik, type, values, expires_at=expires_at, ledger=ledger,
                                     lines=json_option(lines, "--lines"))
        _print(made, "Created", as_json)

    run(body)


def _by_ref(ctx: typer.Context, ref: tuple, api: tuple, verb: str, as_json: bool,
            call) -> None:
    """Run ``call(client)`` on the hold ``ref`` = (id, ik, ledger) and print it."""
    def body():
        _target(*ref)
        with api_client(ctx.obj, *api) as c:
            found = call(c)
        _print(found, verb, as_json)

    run(body)


@hold_app.command("commit")
def commit(ctx: typer.Context, id: Id = None, ik: Ik = None, ledger: Ledger = None,
           amount: Annotated[Optional[str], typer.Option(
               "--amount", help="Capture part (minor units), when its lines are one "
                                "parameter.")] = None,
           parameters: Annotated[Optional[str], typer.Option(
               "--parameters", help="Or recompute the lines from these (JSON object).")] = None,
           api_url: ApiUrl = None, client_id: ClientId = None,
           client_secret: ClientSecret = None, auth_url: AuthUrl = None,
           auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Post a pending hold: all of it, or --amount / --parameters (never more than it
    reserved). Again with the same arguments: a replay."""
    _by_ref(ctx, (id, ik, ledger), (api_url, client_id, client_secret, auth_url, auth_scope),
            "Committed", as_json, lambda c: c.commit_ledger_entry(
                id, ik=ik, ledger=ledger, amount=amount,
                parameters=json_option(parameters, "--parameters")))


def _plain(name: str, verb: str, doc: str, method: str) -> None:
    """Register ``ledger hold NAME``: ``method`` of the client on the hold, no options."""
    def command(ctx: typer.Context, id: Id = None, ik: Ik = None, ledger: Ledger = None,
                api_url: ApiUrl = None, client_id: ClientId = None,
                client_secret: ClientSecret = None, auth_url: AuthUrl = None,
                auth_scope: AuthScope = None, as_json: JsonOut = False):
        _by_ref(ctx, (id, ik, ledger), (api_url, client_id, client_secret, auth_url,
                                        auth_scope),
                verb, as_json, lambda c: getattr(c, method)(id, ik=ik, ledger=ledger))
    command.__doc__ = doc
    hold_app.command(name)(command)


_plain("void", "Voided", "Release a pending hold. Again: a replay.", "void_ledger_entry")
_plain("show", "Hold", "A hold as it is now: status, expiry, what it reserved and what it "
       "posted.", "get_ledger_hold")
