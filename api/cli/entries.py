"""Entries and balances over the API: add-ledger-entry, reverse-ledger-entry, balance,
entries."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from api.cli.common import (EXIT_USAGE, ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret,
                            JsonOut, api_client, emit_json, entry_json, fail, json_option,
                            folding_table, key_values, lines_table, out, run)

app = typer.Typer()


@app.command("add-ledger-entry")
def add_ledger_entry(ctx: typer.Context,
        ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
        type: Annotated[str, typer.Option("--type", help="Entry type of the schema.")],
        ik: Annotated[str, typer.Option("--ik", help="Idempotency key: reuse it to retry.")],
        param: Annotated[Optional[list[str]], typer.Option(
            "--param", "-p", help="Parameter KEY=VALUE (repeatable).")] = None,
        parameters: Annotated[Optional[str], typer.Option(
            "--parameters", help="Parameters as a JSON object.")] = None,
        posted: Annotated[Optional[str], typer.Option("--posted", help="ISO 8601 time.")] = None,
        tag: Annotated[Optional[list[str]], typer.Option("--tag", help="KEY=VALUE")] = None,
        group: Annotated[Optional[list[str]], typer.Option("--group", help="KEY=VALUE")] = None,
        lines: Annotated[Optional[str], typer.Option(
            "--lines", help="Runtime lines as a JSON list.")] = None,
        api_url: ApiUrl = None, client_id: ClientId = None, client_secret: ClientSecret = None,
        auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Post one ledger entry."""

    def body():
        values = dict(json_option(parameters, "--parameters") or {})
        values.update(key_values(param, "--param"))
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.add_ledger_entry(
                ik=ik, type=type, parameters=values, ledger=ledger, posted=posted,
                tags=key_values(tag, "--tag") or None, groups=key_values(group, "--group") or None,
                lines=json_option(lines, "--lines"))
        if as_json:
            emit_json(entry_json(result.entry, result.is_ik_replay))
            return
        replay = " (replay: already posted)" if result.is_ik_replay else ""
        out.print(f"Posted entry {result.entry.id} ik={result.entry.ik}{replay}",
                  highlight=False)
        if result.entry.description:
            out.print(result.entry.description, highlight=False, markup=False)
        out.print(lines_table(result.lines))

    run(body)


@app.command("reverse-ledger-entry")
def reverse_ledger_entry(ctx: typer.Context,
        id: Annotated[Optional[str], typer.Option("--id", help="The entry's id.")] = None,
        ik: Annotated[Optional[str], typer.Option("--ik", help="Or the entry's ik (with --ledger).")] = None,
        ledger: Annotated[Optional[str], typer.Option("--ledger", help="The ledger's ik.")] = None,
        api_url: ApiUrl = None, client_id: ClientId = None, client_secret: ClientSecret = None,
        auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Reverse an entry: a new entry mirrors its lines at the same posted time. Running it
    again is a replay, never a second reversal."""

    def body():
        if (id is None) == (ik is None):
            fail("give the entry's --id, or its --ik and --ledger", EXIT_USAGE)
        if ik is not None and ledger is None:
            fail("--ik needs --ledger", EXIT_USAGE)
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.reverse_ledger_entry(id, ik=ik, ledger=ledger)
        if as_json:
            emit_json({"reversedLedgerEntry": entry_json(result.reversed_entry),
                        "reversingLedgerEntry": entry_json(result.reversing_entry),
                        "isIkReplay": result.is_ik_replay})
            return
        replay = " (replay: already reversed)" if result.is_ik_replay else ""
        out.print(f"Reversed entry {result.reversed_entry.id} ik={result.reversed_entry.ik} "
                  f"by entry {result.reversing_entry.id}{replay}", highlight=False)
        out.print(lines_table(result.reversing_entry.lines))

    run(body)


@app.command("balance")
def balance(ctx: typer.Context, path: Annotated[str, typer.Argument(help="Account path, e.g. liabilities/users:alice/available")],
            ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
            currency: Annotated[Optional[str], typer.Option("--currency")] = None,
            at: Annotated[Optional[str], typer.Option(
                "--at", help="Balance at this time (ISO 8601), or at the end of a period "
                             "(2025, 2025-Q1, 2025-02, 2025-02-03) in the ledger's offset.")] = None,
            api_url: ApiUrl = None, client_id: ClientId = None,
            client_secret: ClientSecret = None, auth_url: AuthUrl = None,
            auth_scope: AuthScope = None, as_json: JsonOut = False):
    """An account's balances: own, children's, and total, per currency."""

    def body():
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            account = client.get_ledger_account(path, ledger, at=at)
        currencies = sorted(set(account.own_balances) | set(account.child_balances)
                            | set(account.balances))
        if currency is not None:
            currencies = [currency]
        rows = [{"currency": c, "own": str(account.own_balances.get(c, 0)),
                 "child": str(account.child_balances.get(c, 0)),
                 "balance": str(account.balances.get(c, 0))} for c in currencies]
        if as_json:
            value = {"path": account.path, "type": account.type, "ledger": ledger,
                     "balances": rows}
            if at is not None:
                value["at"] = at
            emit_json(value)
            return
        when = f" at {at}" if at is not None else ""
        table = folding_table("currency", "own", "children", "balance",
                              title=f"{account.path} ({account.type}){when}")
        for row in rows:
            table.add_row(row["currency"], row["own"], row["child"], row["balance"])
        if not rows:
            table.add_row("-", "0", "0", "0")
        out.print(table)

    run(body)


@app.command("entries")
def entries(ctx: typer.Context, ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
            ik: Annotated[Optional[str], typer.Option("--ik", help="Only the entry with this ik.")] = None,
            id: Annotated[Optional[str], typer.Option("--id", help="Only the entry with this id.")] = None,
            first: Annotated[int, typer.Option("--first", help="How many a page, newest first.")] = 20,
            after: Annotated[Optional[str], typer.Option(
                "--after", help="Continue after this cursor (printed under a page).")] = None,
            every: Annotated[bool, typer.Option("--all", help="Walk every page.")] = False,
            type_: Annotated[Optional[list[str]], typer.Option("--type", help="Entry type (repeatable).")] = None,
            tag: Annotated[Optional[list[str]], typer.Option("--tag", help="KEY=VALUE")] = None,
            group: Annotated[Optional[list[str]], typer.Option("--group", help="KEY=VALUE")] = None,
            posted: Annotated[Optional[str], typer.Option(
                "--posted", help="Posted in this period: 2025, 2025-Q1, 2025-02, 2025-02-03.")] = None,
            account: Annotated[Optional[str], typer.Option(
                "--account", help="With a line in this account path or pattern.")] = None,
            reversed_: Annotated[Optional[str], typer.Option(
                "--reversed", help="hide (default), only, or all reversed/reversing entries.")] = None,
            api_url: ApiUrl = None, client_id: ClientId = None,
            client_secret: ClientSecret = None, auth_url: AuthUrl = None,
            auth_scope: AuthScope = None, as_json: JsonOut = False):
    """A ledger's entries with their lines, newest posted first (or one entry by --ik / --id)."""

    def body():
        flt: dict = {}
        if type_:
            flt["type"] = list(type_)
        if tag:
            flt["tags"] = key_values(tag, "--tag")
        if group:
            flt["groups"] = key_values(group, "--group")
        if posted:
            flt["posted"] = posted
        modes = {None: None, "hide": False, "only": True, "all": None}
        if reversed_ not in modes:
            fail("--reversed: expected hide, only or all", EXIT_USAGE)
        if reversed_ is not None:
            flt["reversed"] = modes[reversed_]
        next_cursor = None
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            if ik is not None or id is not None:
                found = [client.get_ledger_entry(ik, id=id, ledger=ledger)]
            else:
                found, cursor = [], after
                while True:
                    page = client.list_ledger_entries(ledger, filter=flt or None,
                                                      account=account, first=first,
                                                      after=cursor)
                    found += page.nodes
                    cursor = page.page_info.end_cursor
                    if not page.page_info.has_next_page:
                        break
                    if not every:
                        next_cursor = cursor
                        break
        if as_json:
            emit_json([entry_json(e) for e in found])
            return
        for entry in found:
            marks = ""
            if getattr(entry, "reversed_by_id", None):
                marks = f" [reversed by {entry.reversed_by_id}]"
            elif getattr(entry, "reverses_id", None):
                marks = f" [reverses {entry.reverses_id}]"
            out.print(f"[bold]{entry.ik}[/bold] (id {entry.id}) {entry.type} posted "
                      f"{entry.posted.isoformat()}{marks}", highlight=False)
            if entry.description:
                out.print(entry.description, highlight=False, markup=False)
            out.print(lines_table(entry.lines))
        if not found:
            out.print("no entries")
        if next_cursor:
            out.print(f"more: --after {next_cursor}", highlight=False)

    run(body)
