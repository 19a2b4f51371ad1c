"""Schemas and ledgers: store-schema, verify-schema (offline), create-ledger."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from api.cli.common import (EXIT_REFUSED, ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret,
                            JsonOut, api_client, emit_json, err, load_schema_file, out, run, service)

app = typer.Typer()


@app.command("store-schema")
def store_schema(ctx: typer.Context, path: Annotated[Path, typer.Option("--path", help="Schema file (JSON or JSONC).")],
                 api_url: ApiUrl = None, client_id: ClientId = None,
                 client_secret: ClientSecret = None, auth_url: AuthUrl = None,
                 auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Store a schema (JSON/JSONC, with ${ENV_VAR} substitution) as its key's next version."""

    def body():
        document = load_schema_file(path, ctx.obj.environ)
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            stored = client.store_schema(document)
        if as_json:
            emit_json({"key": stored.key, "name": stored.name, "version": stored.version,
                        "created": stored.created.isoformat()})
        else:
            out.print(f"Stored schema [bold]{stored.key}[/bold] version {stored.version}")

    run(body)


@app.command("verify-schema")
def verify_schema(ctx: typer.Context, path: Annotated[Path, typer.Option("--path", help="Schema file (JSON or JSONC).")],
                  as_json: JsonOut = False):
    """Check a schema offline; print every problem with its path. Exit 1 if any."""

    def body():
        document = load_schema_file(path, ctx.obj.environ)
        issues = service.verify_schema(document)
        if as_json:
            emit_json({"valid": not issues,
                        "issues": [{"path": i.path, "message": i.message} for i in issues]})
        elif issues:
            for issue in issues:
                out.print(f"{issue.path}: {issue.message}", highlight=False, markup=False)
            err.print(f"{len(issues)} problem(s) in {path}", highlight=False)
        else:
            out.print(f"{path}: the schema is valid", highlight=False)
        if issues:
            raise typer.Exit(EXIT_REFUSED)

    run(body)


@app.command("create-ledger")
def create_ledger(ctx: typer.Context, ik: Annotated[str, typer.Option("--ik", help="Idempotency key = the ledger's ik.")],
                  name: Annotated[str, typer.Option("--name")],
                  schema: Annotated[str, typer.Option("--schema", help="Schema key.")],
                  balance_utc_offset: Annotated[Optional[str], typer.Option(
                      "--balance-utc-offset")] = None,
                  api_url: ApiUrl = None, client_id: ClientId = None,
                  client_secret: ClientSecret = None, auth_url: AuthUrl = None,
                  auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Create a ledger from a stored schema (idempotent on --ik)."""

    def body():
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.create_ledger(ik, name, schema, balance_utc_offset)
        ledger = result.ledger
        if as_json:
            emit_json({"id": ledger.id, "ik": ledger.ik, "name": ledger.name,
                        "schema": ledger.schema_key, "created": ledger.created.isoformat(),
                        "isIkReplay": result.is_ik_replay})
        else:
            replay = " (already existed)" if result.is_ik_replay else ""
            out.print(f"Ledger [bold]{ledger.ik}[/bold] ({ledger.name}) of schema "
                      f"{ledger.schema_key}{replay}")

    run(body)
