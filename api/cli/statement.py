"""``ledger statement``: an account's lines, oldest first, each with the balance it left, as
a table, JSON or CSV; over the API through `ledger_sdk`, like the other API commands."""
from __future__ import annotations

import csv
import sys
from typing import Annotated, Optional

import typer
from api.cli.common import (ApiUrl, AuthScope, AuthUrl, ClientId, ClientSecret, JsonOut,
                            api_client, emit_json, err, folding_table, out, run)

app = typer.Typer()

PAGE = 200
# A statement holds its lines in memory (they come newest first and print oldest first), so
# an account with a long history is cut to its newest lines unless asked for more.
DEFAULT_MAX_LINES = 10_000
COLUMNS = ("posted", "description", "amount", "currency", "balance", "account", "entry_id",
           "line_id")


def _rows(lines) -> list[dict]:
    """Oldest first. Reversed and reversing lines are kept: without them a line's balance
    would not follow from the one before it."""
    return [{"posted": line.posted.isoformat(), "description": line.description,
             "amount": str(line.amount), "currency": line.currency,
             "balance": None if line.running_balance is None else str(line.running_balance),
             "account": line.account_path, "entry_id": line.entry_id, "line_id": line.id}
            for line in reversed(lines)]


def _ends(rows: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
    """Per currency of one account: the balance before the first row and after the last
    (none for a pattern matching several accounts: their balances do not add up in order)."""
    opening: dict[str, str] = {}
    if len({row["account"] for row in rows}) > 1:
        return opening, {}
    closing: dict[str, str] = {}
    for row in rows:
        if row["balance"] is None:
            continue
        opening.setdefault(row["currency"], str(int(row["balance"]) - int(row["amount"])))
        closing[row["currency"]] = row["balance"]
    return opening, closing


@app.command("statement")
def statement(ctx: typer.Context,
              account: Annotated[str, typer.Argument(
                  help="The account path, e.g. liabilities/users:alice/available.")],
              ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
              period: Annotated[Optional[str], typer.Option(
                  "--period", help="Only this period: 2025, 2025-Q1, 2025-02, 2025-02-03 "
                                   "(in the ledger's balanceUTCOffset).")] = None,
              as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
              max_lines: Annotated[int, typer.Option(
                  "--max-lines", min=1, help="At most this many lines, the newest; the "
                                             "opening balance is the one before the first "
                                             "line shown.")] = DEFAULT_MAX_LINES,
              api_url: ApiUrl = None, client_id: ClientId = None,
              client_secret: ClientSecret = None, auth_url: AuthUrl = None,
              auth_scope: AuthScope = None, as_json: JsonOut = False):
    """An account's statement: every line oldest first with its date and time, description,
    amount and the resulting balance."""

    def body():
        flt: dict = {"reversed": None}
        if period is not None:
            flt["posted"] = period
        lines, cursor, more = [], None, True
        with api_client(ctx.obj, api_url, client_id, client_secret, auth_url, auth_scope) as client:
            while more and len(lines) < max_lines:
                page = client.list_lines(account, ledger, filter=flt, after=cursor,
                                         first=min(PAGE, max_lines - len(lines)))
                lines += page.nodes
                more, cursor = page.page_info.has_next_page, page.page_info.end_cursor
        rows = _rows(lines)
        opening, closing = _ends(rows)
        if more:
            # On stderr: the table, JSON or CSV on stdout stays whole and parseable.
            err.print(f"only the newest {len(rows)} lines (--max-lines); name a --period or "
                      "raise --max-lines for older ones", highlight=False)
        if as_json:
            emit_json({"ledger": ledger, "account": account, "period": period,
                       "opening": opening, "closing": closing, "truncated": more,
                       "lines": rows})
        elif as_csv:
            writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        else:
            _print_table(account, period, rows, opening, closing)

    run(body)


def _print_table(account: str, period: Optional[str], rows: list[dict],
                 opening: dict[str, str], closing: dict[str, str]) -> None:
    title = f"{account}" + (f" ({period})" if period else "")
    table = folding_table("posted", "description", "amount", "currency", "balance",
                          title=title)
    for row in rows:
        table.add_row(row["posted"], row["description"] or "", row["amount"], row["currency"],
                      row["balance"] or "")
    out.print(table)
    if not rows:
        out.print("no lines")
    for currency in sorted(closing):
        out.print(f"{currency}: opening {opening[currency]}, closing {closing[currency]}",
                  highlight=False)
