"""Admin commands on the database itself: audit, migrate."""
from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import (EXIT_REFUSED, AdminDatabase, DataDir, JsonOut, emit_json, err,
                            out, run, run_admin, service)

app = typer.Typer()


@app.command("audit")
def audit(ctx: typer.Context, ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
          data_dir: DataDir = None, as_json: JsonOut = False):
    """Check a ledger's books from the tables: every line names an entry and an account of
    the ledger, every entry balances, every balance is the sum of its lines, every running
    total is right, no balance breaks a standing bound of the schema (a postcondition gte
    or lte a constant). Exits 1 when something is wrong. Reads everything: run it off-peak."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            problems = run_admin(lambda: service.audit(admin.db, ledger))
        if as_json:
            emit_json({"ledger": ledger, "ok": not problems,
                        "problems": [{"check": p.check, "detail": p.detail} for p in problems]})
        elif problems:
            for p in problems:
                err.print(str(p), highlight=False)
        else:
            out.print(f"The books of {ledger} hold.", highlight=False)
        if problems:
            raise typer.Exit(EXIT_REFUSED)

    run(body)


@app.command("migrate")
def migrate(ctx: typer.Context, data_dir: DataDir = None):
    """Bring the database schema up to date (Alembic migrations)."""

    def body():
        from ledger.migrate import upgrade

        with AdminDatabase(ctx.obj, data_dir, migrate=False) as admin:
            run_admin(lambda: upgrade(admin.url))
        out.print("The database is up to date.")

    run(body)
