"""``ledger stripe ...``: configure the Stripe link, backfill by hand, list what is left
unreconciled. Admin commands: they open the database the way the server finds it."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer

from api.cli.common import (EXIT_USAGE, AdminDatabase, DataDir, emit_json, err, fail, out, run,
                            run_admin, service)
from ledger.settings import Settings

stripe_app = typer.Typer(help="The Stripe link: configure it, backfill, list problems.",
                         no_args_is_help=True)

LinkOption = Annotated[Optional[str], typer.Option("--link-id", envvar="STRIPE_LINK_ID",
                                                   help="The Stripe link's id (default: stripe).")]


def _config(settings: Settings, link_id: Optional[str]) -> Settings:
    """The settings, on the link ``--link-id`` names (default: STRIPE_LINK_ID, or stripe)."""
    return replace(settings, stripe_link_id=link_id) if link_id else settings


def _missing(admin, link_id: Optional[str]) -> Optional[str]:
    """What the link lacks to sync, as one message; None when nothing is missing."""
    config = _config(admin.config, link_id)
    stripe = run_admin(lambda: service.stripe_settings(admin.db, config))
    missing = service.stripe_missing_for_sync(stripe)
    if not missing:
        return None
    return f"Stripe link {stripe.link_id} is not configured: it needs " + "; ".join(missing)


def _date(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: expected a date like 2025-01-31 or a time like 2025-01-31T12:00:00Z, got {text!r}", EXIT_USAGE)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@stripe_app.command("configure")
def configure(ctx: typer.Context,
        ledger: Annotated[Optional[str], typer.Option("--ledger", help="Ledger ik charges are reconciled into.")] = None,
        entry_type: Annotated[Optional[str], typer.Option("--entry-type", help="Entry type that reconciles a charge (e.g. deposit).")] = None,
        fee_entry_type: Annotated[Optional[str], typer.Option("--fee-entry-type", help="Entry type that books a Stripe fee.")] = None,
        param: Annotated[Optional[list[str]], typer.Option("--param", help="name=path, e.g. user_id=metadata.user_id (repeatable; replaces the mapping).")] = None,
        api_key: Annotated[bool, typer.Option("--api-key", help="Prompt for the restricted API key and store it.")] = False,
        webhook_secret: Annotated[bool, typer.Option("--webhook-secret", help="Prompt for the webhook signing secret and store it.")] = False,
        link_id: LinkOption = None, data_dir: DataDir = None):
    """Configure the Stripe link. Secrets are prompted for (hidden), never taken as
    arguments, so they stay out of shell history; STRIPE_API_KEY / STRIPE_WEBHOOK_SECRET
    in the environment win over stored ones."""
    def body():
        mapping = None
        if param is not None:
            mapping = {}
            for item in param:
                name, sep, path = item.partition("=")
                if not sep or not name or not path:
                    fail(f"--param: expected name=path, got {item!r}", EXIT_USAGE)
                mapping[name] = path
        key = typer.prompt("Stripe restricted API key", hide_input=True) if api_key else None
        secret = typer.prompt("Stripe webhook signing secret", hide_input=True) if webhook_secret else None
        with AdminDatabase(ctx.obj, data_dir) as admin:
            stripe = run_admin(lambda: service.configure_stripe(
                admin.db, _config(admin.config, link_id), ledger_ik=ledger, charge_entry_type=entry_type,
                fee_entry_type=fee_entry_type, parameters=mapping, api_key=key,
                webhook_secret=secret))
        out.print(
            f"Stripe link [bold]{stripe.link_id}[/bold]: ledger {stripe.ledger_ik or '-'}, "
            f"charges -> {stripe.charge_entry_type or '-'}, fees -> {stripe.fee_entry_type or '-'}, "
            f"parameters {stripe.parameters}, API key {'set' if stripe.api_key else 'missing'}, "
            f"webhook secret {'set' if stripe.webhook_secret else 'missing'}", highlight=False)

    run(body)


@stripe_app.command("backfill")
def backfill(ctx: typer.Context, since: Annotated[str, typer.Option("--since", help="Start of the window (date or time, UTC if no offset).")],
             until: Annotated[Optional[str], typer.Option("--until", help="End of the window (default: now).")] = None,
             link_id: LinkOption = None, data_dir: DataDir = None,
             as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False):
    """List Stripe balance transactions created since DATE, sync the settled ones and
    reconcile their charges. Safe to repeat; an interrupted run with the same --since
    (and no --until) resumes from its saved cursor."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    def body():
        import logging

        # The report below lists the problems; the module's warnings would repeat them
        # through the progress bar.
        logging.getLogger("ledger.stripe").addHandler(logging.NullHandler())
        start = _date(since, "--since")
        end = _date(until, "--until") if until else None
        with AdminDatabase(ctx.obj, data_dir) as admin:
            if missing := _missing(admin, link_id):
                fail(missing, EXIT_USAGE)
            with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                          TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                          console=err, transient=as_json) as bar:
                task = bar.add_task("Stripe backfill", total=1.0)

                def progress(fraction, report):
                    bar.update(task, completed=fraction, description=(
                        f"Stripe backfill: {report.listed} listed, {report.reconciled} reconciled, "
                        f"{report.pending} pending, {len(report.problems)} problems"))

                report = run_admin(lambda: service.stripe_backfill(
                    admin.db, _config(admin.config, link_id), start, end, progress=progress))
        problems = [{"balance_transaction": p.balance_transaction, "source": p.source,
                     "reason": p.reason} for p in report.problems]
        if as_json:
            emit_json({"listed": report.listed, "pending": report.pending,
                            "synced": report.synced, "reconciled": report.reconciled,
                            "already_reconciled": report.already_reconciled,
                            "problems": problems})
            return
        out.print(f"{report.listed} balance transactions: {report.synced} synced, "
                      f"{report.pending} pending, {report.reconciled} reconciled, "
                      f"{report.already_reconciled} already reconciled", highlight=False)
        for p in problems:
            out.print(f"unreconciled {p['balance_transaction']} ({p['source']}): {p['reason']}",
                          highlight=False)

    run(body)


@stripe_app.command("problems")
def problems(ctx: typer.Context, link_id: LinkOption = None, data_dir: DataDir = None,
             as_json: Annotated[bool, typer.Option("--json")] = False):
    """Settled charges left unreconciled, and why (for example a missing metadata.user_id)."""
    def body():
        with AdminDatabase(ctx.obj, data_dir) as admin:
            missing = _missing(admin, link_id)
            found = run_admin(lambda: service.stripe_problems(admin.db, _config(admin.config, link_id)))
        # What is missing comes first: "No problems." from a link that never synced
        # anything would say the opposite of the truth.
        if missing:
            err.print(f"error: {missing}", highlight=False, markup=False)
        if as_json:
            emit_json([{"balance_transaction": p.balance_transaction, "source": p.source,
                             "reason": p.reason} for p in found])
        else:
            if not found and not missing:
                out.print("No problems.")
            for p in found:
                out.print(f"{p.balance_transaction} ({p.source}): {p.reason}", highlight=False)
        if missing:
            raise typer.Exit(EXIT_USAGE)

    run(body)
