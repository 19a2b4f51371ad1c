"""``ledger api-client ...``: API clients (OAuth2 client credentials), straight in the
database: create, list, revoke."""
from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import (AdminDatabase, DataDir, JsonOut, emit_json, err, out, run, run_admin,
                            service)

clients_app = typer.Typer(help="API clients (OAuth2 client credentials): create, list, revoke.",
                          no_args_is_help=True)


@clients_app.command("create")
def api_client_create(ctx: typer.Context, name: Annotated[str, typer.Option("--name")],
                      scope: Annotated[str, typer.Option(
                          "--scope", help="write (full access) or read (read-only).")] = "write",
                      data_dir: DataDir = None, as_json: JsonOut = False):
    """Create an API client; its secret is printed once, here, and never again."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            created = run_admin(lambda: service.create_client(admin.db, name, scope))
        if as_json:
            emit_json({"client_id": created.client_id, "client_secret": created.client_secret,
                        "name": created.client.name, "scope": created.client.scope})
            return
        # Plain lines, never table cells: a cell narrower than a secret would cut it, and a
        # cut secret cannot be shown again.
        for label, value in (("client id", created.client_id),
                             ("client secret", created.client_secret),
                             ("name", created.client.name), ("scope", created.client.scope)):
            out.print(f"{label + ':':<15}{value}", highlight=False, markup=False,
                      soft_wrap=True)
        err.print("Store the secret now: only its hash is kept, it cannot be shown again.")

    run(body)


@clients_app.command("list")
def api_client_list(ctx: typer.Context, data_dir: DataDir = None, as_json: JsonOut = False):
    """List API clients (never their secrets)."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            found = run_admin(lambda: service.list_clients(admin.db))
        if as_json:
            emit_json([c.to_dict() for c in found])
            return
        # One plain line a client, its id first and whole (ids are copied into `revoke`).
        for c in found:
            revoked = f"  revoked {c.revoked.isoformat(timespec='seconds')}" if c.revoked else ""
            out.print(f"{c.id}  {c.scope:<5}  created {c.created.isoformat(timespec='seconds')}"
                      f"{revoked}  {c.name}", highlight=False, markup=False, soft_wrap=True)
        if not found:
            err.print("no API clients (create one: ledger api-client create --name NAME)")

    run(body)


@clients_app.command("revoke")
def api_client_revoke(ctx: typer.Context, client_id: Annotated[str, typer.Argument(help="The client to revoke.")],
                      data_dir: DataDir = None, as_json: JsonOut = False):
    """Revoke an API client: its tokens stop working at once."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            revoked = run_admin(lambda: service.revoke_client(admin.db, client_id))
        if as_json:
            emit_json(revoked.to_dict())
        else:
            out.print(f"Revoked {revoked.id} ({revoked.name})", highlight=False)

    run(body)
