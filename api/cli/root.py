"""The ``ledger`` command: reads the settings once and hands them to its commands.

Two kinds of commands:

* API commands (store-schema, create-ledger, add-ledger-entry, balance, entries, token,
  link ...) talk to a running API over HTTP with `ledger_sdk`, using the credentials
  `ledger login` saved (or flags / LEDGER_* environment variables).
* Admin commands (api-client, audit, migrate, stripe ...) open the database directly:
  DATABASE_URL, else the one the running `ledger up` recorded (`api.cli.runtime`), else the
  embedded PostgreSQL of an existing data folder. They never create one.
* Lifecycle: up, status, down.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli import (admin, clients, codegen, credentials, entries, holds, ledgers,
                     lifecycle, links, monitors, secret_keys, statement, stripe_link, webhooks)
from api.cli.common import EXIT_USAGE, err
from ledger.settings import Settings, SettingsError

app = typer.Typer(help="A self-hosted double-entry ledger: a database for money.",
                  rich_markup_mode=None, context_settings={"max_content_width": 120},
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


@app.callback()
def read_settings(ctx: typer.Context) -> None:
    try:
        ctx.obj = Settings.from_env()
    except SettingsError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE) from None


for commands in (ledgers.app, entries.app, credentials.app, admin.app, codegen.app,
                 lifecycle.app):
    app.add_typer(commands)
app.add_typer(clients.clients_app, name="api-client")
app.add_typer(stripe_link.stripe_app, name="stripe")
app.add_typer(links.link_app, name="link")
app.add_typer(secret_keys.secrets_app, name="secrets")
app.add_typer(statement.app)
app.add_typer(monitors.monitors_app, name="monitors")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(holds.hold_app, name="hold")


@app.command("up")
def up(ctx: typer.Context,
       data_dir: Annotated[Path, typer.Option(
           "--data-dir", envvar="LEDGER_DATA_DIR",
           help="Data folder: embedded servers, logs, secret key.")] = Path(".ledger"),
       host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
       port: Annotated[int, typer.Option("--port")] = 8000):
    """Run everything on this machine: database, Redis, migrations, API, worker and beat."""
    from api.cli.up import main

    main(ctx.obj, data_dir=data_dir, host=host, port=port)
