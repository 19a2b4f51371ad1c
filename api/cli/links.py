"""``ledger link ...``: custom links, their accounts and txs, reconcileTx and a linked
account's unreconciled txs, through the API (the SDK), like the other API commands."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from api.cli.common import (EXIT_USAGE, ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret,
                            JsonOut, api_client, emit_json, entry_json, fail, folding_table,
                            key_values, lines_table, out, run, substitute_env)
from ledger.settings import Settings

link_app = typer.Typer(help="Custom links: accounts, txs, reconcile-tx, unreconciled txs.",
                       no_args_is_help=True)

LinkId = Annotated[str, typer.Option("--link", help="The link's id.")]
FileOption = Annotated[Path, typer.Option("--file", help="JSON file: a list, or {\"txs\"/\"accounts\": [...]}. ${ENV_VAR} is substituted.")]


def _read_list(settings: Settings, path: Path, key: str) -> list:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"--file {path}: {exc}", EXIT_USAGE)
    value = substitute_env(value, settings.environ)
    if isinstance(value, dict):
        value = value.get(key)
    if not isinstance(value, list):
        fail(f"--file {path}: expected a JSON list (or {{\"{key}\": [...]}})", EXIT_USAGE)
    return value


def _tx_json(tx) -> dict:
    return {"id": tx.id, "externalId": tx.external_id, "amount": str(tx.amount),
            "posted": tx.posted.isoformat(), "description": tx.description,
            "externalAccountId": tx.external_account_id, "isReconciled": tx.is_reconciled,
            "deleted": tx.deleted.isoformat() if tx.deleted else None,
            "ledgerEntryIds": tx.ledger_entry_ids}


def _print_txs(txs, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        emit_json({"txs": [_tx_json(x) for x in txs], **(extra or {})})
        return
    table = folding_table("id", "externalId", "account", "amount", "posted", "description",
                          "reconciled")
    for x in txs:
        table.add_row(x.id, x.external_id, x.external_account_id, str(x.amount),
                      x.posted.isoformat(), x.description or "",
                      ",".join(x.ledger_entry_ids) or ("deleted" if x.deleted else "-"))
    out.print(table)


def _client(settings: Settings, api_url, client_id, client_secret, auth_url, auth_scope):
    return api_client(settings, api_url, client_id, client_secret, auth_url, auth_scope)


@link_app.command("create")
def create(ctx: typer.Context, ik: Annotated[str, typer.Option("--ik", help="Idempotency key (the link's id unless --id).")],
           name: Annotated[str, typer.Option("--name")],
           id: Annotated[Optional[str], typer.Option("--id", help="The link's id, as schemas name it.")] = None,
           api_url: ApiUrl = None, client_id: ClientId = None, client_secret: ClientSecret = None,
           auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Create a custom link."""
    def body():
        with _client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            made = client.create_custom_link(ik, name, id)
        if as_json:
            emit_json({"id": made.link.id, "name": made.link.name, "type": made.link.type,
                            "isIkReplay": made.is_ik_replay})
        else:
            out.print(f"Link {made.link.id} ({made.link.name})"
                          + (" (replay)" if made.is_ik_replay else ""), highlight=False)

    run(body)


@link_app.command("sync-accounts")
def sync_accounts(ctx: typer.Context, link: LinkId, file: FileOption, api_url: ApiUrl = None,
                  client_id: ClientId = None, client_secret: ClientSecret = None,
                  auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Create or rename external accounts: [{"externalId", "name", "currency": {"code"}}]."""
    def body():
        accounts = _read_list(ctx.obj, file, "accounts")
        with _client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            synced = client.sync_custom_accounts(link, accounts)
        if as_json:
            emit_json([{"id": a.id, "externalId": a.external_id, "name": a.name,
                             "currency": a.currency} for a in synced])
        else:
            for a in synced:
                out.print(f"{a.id} {a.external_id} {a.name or ''}", highlight=False)

    run(body)


@link_app.command("sync-txs")
def sync_txs(ctx: typer.Context, link: LinkId, file: FileOption, api_url: ApiUrl = None,
             client_id: ClientId = None, client_secret: ClientSecret = None,
             auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Sync settled txs (seed 002's syncCustomTxs variables), 100 per call."""
    def body():
        txs = _read_list(ctx.obj, file, "txs")
        synced = []
        with _client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            for start in range(0, len(txs), 100):
                synced += client.sync_custom_txs(link, txs[start:start + 100])
        _print_txs(synced, as_json)

    run(body)


@link_app.command("delete-txs")
def delete_txs(ctx: typer.Context, link: LinkId, file: FileOption, api_url: ApiUrl = None,
               client_id: ClientId = None, client_secret: ClientSecret = None,
               auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Delete unreconciled txs: [{"id"}] or [{"account": {...}, "externalId"}]."""
    def body():
        txs = _read_list(ctx.obj, file, "txs")
        with _client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            deleted = client.delete_custom_txs(link, txs)
        _print_txs(deleted, as_json)

    run(body)


@link_app.command("reconcile-tx")
def reconcile_tx(ctx: typer.Context,
        ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
        type: Annotated[Optional[str], typer.Option("--type", help="Entry type posting to the linked account. Default: the server picks the schema's one type whose linked line can take the tx (an error names the candidates).")] = None,
        param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="KEY=VALUE (repeatable).")] = None,
        tx: Annotated[Optional[str], typer.Option("--tx", help="External id of the tx: needed without --type, and when the entry type does not name it.")] = None,
        ik: Annotated[Optional[str], typer.Option("--ik", help="Default: the tx's external id.")] = None,
        api_url: ApiUrl = None, client_id: ClientId = None, client_secret: ClientSecret = None,
        auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Reconcile a synced tx: post the entry with the tx's amount and posted time. Without
    --type the server chooses the entry type from the schema (name the tx with --tx)."""
    def body():
        with _client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.reconcile_tx(type=type, parameters=key_values(param, "--param"),
                                         external_ref=tx, ledger=ledger, ik=ik)
        if as_json:
            emit_json(entry_json(result.entry, result.is_ik_replay))
            return
        replay = " (replay: already reconciled)" if result.is_ik_replay else ""
        out.print(f"Reconciled: entry {result.entry.id} ik={result.entry.ik}{replay}",
                      highlight=False)
        out.print(lines_table(result.lines))

    run(body)


@link_app.command("unreconciled")
def unreconciled(ctx: typer.Context, ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
                 path: Annotated[str, typer.Option("--path", help="Path of the linked account.")],
                 first: Annotated[int, typer.Option("--first", help="Page size.")] = 50,
                 after: Annotated[Optional[str], typer.Option("--after", help="Cursor of the previous page.")] = None,
                 api_url: ApiUrl = None, client_id: ClientId = None,
                 client_secret: ClientSecret = None, auth_url: AuthUrl = None,
                 auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Synced txs of a linked account that no entry reconciles yet."""
    def body():
        with _client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            page = client.unreconciled_txs(path, ledger=ledger, first=first, after=after)
        extra: dict[str, Any] = {"endCursor": page.end_cursor, "hasNextPage": page.has_next_page}
        _print_txs(page.txs, as_json, extra)
        if not as_json and page.has_next_page:
            out.print(f"more: --after {page.end_cursor}", highlight=False)

    run(body)
