"""``ledger secrets ...``: the key that encrypts the secrets the database keeps (the Stripe
credentials and the token signing key): make one, and rotate to a new one."""
from __future__ import annotations


import typer

from api.cli.common import AdminDatabase, DataDir, out, run, run_admin, service

secrets_app = typer.Typer(help="Secrets at rest: generate a key, rotate to a new one.",
                          no_args_is_help=True)


@secrets_app.command("generate-key")
def generate_key():
    """Print a new random key for LEDGER_SECRET_KEY (keep it like a password: without it
    the stored secrets cannot be read)."""
    out.print(service.generate_key(), highlight=False)


@secrets_app.command("rotate")
def rotate(ctx: typer.Context, data_dir: DataDir = None):
    """Re-encrypt every stored secret with LEDGER_SECRET_KEY, reading them with it or with
    a key of LEDGER_OLD_SECRET_KEYS (comma-separated), in one transaction: either all are
    rewritten or none. Plain values left from before encryption are encrypted too. The
    secrets themselves stay the same: tokens signed before stay valid until they expire.
    Then restart the API and workers with the new key (and drop the old one)."""

    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            changed = run_admin(lambda: service.rotate_secrets(
                admin.db, service.Keyring.of(admin.config)))
        out.print(f"{changed} stored secret(s) re-encrypted with LEDGER_SECRET_KEY.",
                  highlight=False)

    run(body)
