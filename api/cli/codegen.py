"""``ledger codegen``: a typed Python client for one schema file (seed 001's codegen).
Offline: it reads the file, checks it with the server's rules, and writes the module
`ledger_sdk.codegen` makes."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from api.cli.common import EXIT_REFUSED, EXIT_USAGE, err, fail, load_schema_file, out, run, service
from ledger_sdk.codegen import generate, read_entry_types

app = typer.Typer()


@app.command("codegen")
def codegen(ctx: typer.Context,
            schema: Annotated[Path, typer.Option("--schema", help="Schema file (JSON or JSONC).")],
            out_path: Annotated[Optional[Path], typer.Option(
                "--out", help="The module to write (default: print it).")] = None):
    """Write a typed client: one method per entry type (DepositEntry -> deposit_entry),
    keyword arguments typed from its parameters, async Client and blocking SyncClient."""

    def body():
        document = load_schema_file(schema, ctx.obj.environ)
        issues = service.verify_schema(document)
        if issues:
            for issue in issues:
                err.print(f"{issue.path}: {issue.message}", highlight=False, markup=False)
            fail(f"{len(issues)} problem(s) in {schema}; no client written", EXIT_REFUSED)
        source = generate(document)
        if out_path is None:
            print(source, end="")
            return
        try:
            out_path.write_text(source, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out_path}: {exc.strerror or exc}", EXIT_USAGE)
        count = len(read_entry_types(document))
        out.print(f"Wrote {out_path}: {count} entry type method(s) on Client and SyncClient",
                  highlight=False, markup=False)

    run(body)
