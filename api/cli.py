"""The ``ledger`` command line.

Two kinds of commands:

* API commands (store-schema, create-ledger, add-ledger-entry, balance, entries, token) talk
  to a running API over HTTP with `ledger_sdk`, using the credentials `ledger login` saved
  (or flags / LEDGER_* environment variables).
* Admin commands (api-client, migrate) open the database directly, found the way the server
  finds it: DATABASE_URL, else the embedded PostgreSQL under --data-dir.

Exit codes scripts can rely on: 0 done; 1 refused (bad request, not found, invalid schema);
2 usage error or missing configuration; 3 transient failure (unreachable, internal error:
retry later); 4 authentication or permission failure.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table


import ledger_sdk
from ledger_sdk import errors as sdk_errors

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_AUTH = 4

app = typer.Typer(help="A self-hosted double-entry ledger: a database for money.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
clients_app = typer.Typer(help="API clients (OAuth2 client credentials): create, list, revoke.",
                          no_args_is_help=True)
app.add_typer(clients_app, name="api-client")
from api.stripe_cli import stripe_app  # noqa: E402  (imports this module only lazily)
app.add_typer(stripe_app, name="stripe")
from api.link_cli import link_app  # noqa: E402  (imports this module only lazily)
app.add_typer(link_app, name="link")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class Failure(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.message = message
        self.code = code


def _fail(message: str, code: int = EXIT_REFUSED):
    raise Failure(message, code)


def _emit_json(value: Any) -> None:
    # Plain print, not rich: scripts parse this, it must be exactly JSON.
    print(json.dumps(value, indent=2, default=str))


def _run(fn, *args, **kwargs):
    """Run a command body, turning every expected failure into a message and an exit code."""
    try:
        return fn(*args, **kwargs)
    except Failure as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, markup=True)
        raise typer.Exit(exc.code)
    except sdk_errors.LedgerAPIError as exc:
        if isinstance(exc, (sdk_errors.AuthenticationError, sdk_errors.PermissionDeniedError)):
            code = EXIT_AUTH
        elif exc.retryable:
            code = EXIT_TRANSIENT
        else:
            code = EXIT_REFUSED
        err.print(f"error: {exc.code}: {exc.message}", highlight=False, markup=False)
        raise typer.Exit(code)


# ------------------------------------------------------------------ schema files

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_env(value: Any, where: str = "", missing: Optional[list] = None) -> Any:
    """``${ENV_VAR}`` in every string of a parsed document (seeds 002/003: the CLI swaps in
    per-environment ids). ``{{parameters}}`` are left alone: they belong to the schema."""
    if missing is None:
        missing = []
    if isinstance(value, str):
        def swap(match):
            name = match.group(1)
            if name not in os.environ:
                missing.append((name, where or "(top level)"))
                return match.group(0)
            return os.environ[name]
        return _ENV_VAR.sub(swap, value)
    if isinstance(value, list):
        return [substitute_env(v, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {substitute_env(k, where, missing): substitute_env(v, f"{where}.{k}" if where else k,
                                                                  missing)
                for k, v in value.items()}
    return value


def load_schema_file(path: Path) -> dict:
    import json5

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        document = json5.loads(text)
    except ValueError as exc:
        _fail(f"{path} is not valid JSON/JSONC: {exc}")
    if not isinstance(document, dict):
        _fail(f"{path}: a schema is a JSON object with key, chartOfAccounts, ledgerEntries")
    missing: list = []
    document = substitute_env(document, "", missing)
    if missing:
        listed = "; ".join(f"${{{name}}} at {where}" for name, where in missing)
        _fail(f"{path}: environment variable(s) not set: {listed}")
    return document


# ------------------------------------------------------------------ API connection

def config_path() -> Path:
    override = os.environ.get("LEDGER_CONFIG")
    if override:
        return Path(override)
    return Path(typer.get_app_dir("ledger")) / "config.json"


def load_config() -> dict:
    path = config_path()
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the login configuration {path}: {exc}", EXIT_USAGE)


def save_config(values: dict) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 from the first byte: the secret is never readable by others, not even
    # between a write and a chmod.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path


ApiUrl = Annotated[Optional[str], typer.Option("--api-url", envvar="LEDGER_API_URL",
                                               help="API base URL (or its /graphql URL).")]
ClientId = Annotated[Optional[str], typer.Option("--client-id", envvar="LEDGER_CLIENT_ID")]
ClientSecret = Annotated[Optional[str], typer.Option("--client-secret",
                                                     envvar="LEDGER_CLIENT_SECRET")]
AuthUrl = Annotated[Optional[str], typer.Option("--oauth-url", "--auth-url",
                                                envvar="LEDGER_AUTH_URL",
                                                help="Token endpoint (default: API /oauth2/token).")]
AuthScope = Annotated[Optional[str], typer.Option("--oauth-scope", "--auth-scope",
                                                  envvar="LEDGER_AUTH_SCOPE")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def api_client(api_url, client_id, client_secret, auth_url, auth_scope) -> ledger_sdk.SyncClient:
    saved = load_config()
    api_url = api_url or saved.get("api_url")
    client_id = client_id or saved.get("client_id")
    client_secret = client_secret or saved.get("client_secret")
    if not (api_url and client_id and client_secret):
        _fail("no API credentials: run `ledger login --api-url URL --client-id ID "
              "--client-secret SECRET`, or set LEDGER_API_URL, LEDGER_CLIENT_ID and "
              "LEDGER_CLIENT_SECRET", EXIT_USAGE)
    return ledger_sdk.SyncClient(client_id=client_id, client_secret=client_secret,
                                 api_url=api_url, auth_url=auth_url or saved.get("auth_url"),
                                 auth_scope=auth_scope or saved.get("auth_scope"),
                                 max_retries=3)


def _key_values(items: list[str], option: str) -> dict[str, str]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"{option} {item!r}: expected KEY=VALUE", EXIT_USAGE)
        result[key] = value
    return result


def _json_option(text: Optional[str], option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        _fail(f"{option}: not valid JSON: {exc}", EXIT_USAGE)


# ------------------------------------------------------------------ database (admin)

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="LEDGER_DATA_DIR",
                                       help="Data folder of the embedded PostgreSQL, used "
                                            "when DATABASE_URL is not set.")]


class _AdminDatabase:
    """The database for admin commands: DATABASE_URL, else the embedded one under the data
    folder (started for the command if `ledger up` is not running it, and stopped after)."""

    def __init__(self, data_dir: Path, migrate: bool = True):
        self.data_dir = data_dir
        self.migrate = migrate
        self.keepalive = None
        self.db = None

    def __enter__(self):
        from ledger.db import Database

        url = os.environ.get("DATABASE_URL")
        if not url:
            from ledger.embedded import EmbeddedServerError, resolve_urls

            try:
                url, _redis, self.keepalive = resolve_urls(self.data_dir)
            except EmbeddedServerError as exc:
                _fail(str(exc), EXIT_TRANSIENT)
            if self.migrate:
                # Nobody else migrates an embedded database a command starts on its own.
                from ledger.migrate import upgrade
                upgrade(url)
        self.url = url
        self.db = Database(url)
        return self

    def __exit__(self, *exc):
        if self.db is not None:
            self.db.dispose()
        if self.keepalive is not None:
            self.keepalive.stop()


def _admin(fn):
    """Database errors of admin commands as messages, not tracebacks."""
    import sqlalchemy.exc

    from ledger.errors import LedgerError

    try:
        return fn()
    except LedgerError as exc:
        code = EXIT_TRANSIENT if exc.retryable else EXIT_REFUSED
        _fail(f"{exc.code}: {exc.message}", code)
    except sqlalchemy.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P01":
            _fail("the database has no API client tables yet: run `ledger migrate`")
        raise
    except sqlalchemy.exc.OperationalError as exc:
        _fail(f"cannot reach the database: {exc.orig}", EXIT_TRANSIENT)


# ------------------------------------------------------------------ commands: schema

@app.command("store-schema")
def store_schema(path: Annotated[Path, typer.Option("--path", help="Schema file (JSON or JSONC).")],
                 api_url: ApiUrl = None, client_id: ClientId = None,
                 client_secret: ClientSecret = None, auth_url: AuthUrl = None,
                 auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Store a schema (JSON/JSONC, with ${ENV_VAR} substitution) as its key's next version."""

    def body():
        document = load_schema_file(path)
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
            stored = client.store_schema(document)
        if as_json:
            _emit_json({"key": stored.key, "name": stored.name, "version": stored.version,
                        "created": stored.created.isoformat()})
        else:
            out.print(f"Stored schema [bold]{stored.key}[/bold] version {stored.version}")

    _run(body)


@app.command("verify-schema")
def verify_schema(path: Annotated[Path, typer.Option("--path", help="Schema file (JSON or JSONC).")],
                  as_json: JsonOut = False):
    """Check a schema offline; print every problem with its path. Exit 1 if any."""

    def body():
        from ledger.service import verify_schema as verify

        document = load_schema_file(path)
        issues = verify(document)
        if as_json:
            _emit_json({"valid": not issues,
                        "issues": [{"path": i.path, "message": i.message} for i in issues]})
        elif issues:
            for issue in issues:
                out.print(f"{issue.path}: {issue.message}", highlight=False, markup=False)
            err.print(f"{len(issues)} problem(s) in {path}", highlight=False)
        else:
            out.print(f"{path}: the schema is valid", highlight=False)
        if issues:
            raise typer.Exit(EXIT_REFUSED)

    _run(body)


# ------------------------------------------------------------------ commands: ledgers, entries

@app.command("create-ledger")
def create_ledger(ik: Annotated[str, typer.Option("--ik", help="Idempotency key = the ledger's ik.")],
                  name: Annotated[str, typer.Option("--name")],
                  schema: Annotated[str, typer.Option("--schema", help="Schema key.")],
                  balance_utc_offset: Annotated[Optional[str], typer.Option(
                      "--balance-utc-offset")] = None,
                  api_url: ApiUrl = None, client_id: ClientId = None,
                  client_secret: ClientSecret = None, auth_url: AuthUrl = None,
                  auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Create a ledger from a stored schema (idempotent on --ik)."""

    def body():
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.create_ledger(ik, name, schema, balance_utc_offset)
        ledger = result.ledger
        if as_json:
            _emit_json({"id": ledger.id, "ik": ledger.ik, "name": ledger.name,
                        "schema": ledger.schema_key, "created": ledger.created.isoformat(),
                        "isIkReplay": result.is_ik_replay})
        else:
            replay = " (already existed)" if result.is_ik_replay else ""
            out.print(f"Ledger [bold]{ledger.ik}[/bold] ({ledger.name}) of schema "
                      f"{ledger.schema_key}{replay}")

    _run(body)


def _lines_table(lines) -> Table:
    table = Table("key", "account", "amount", "currency", "type")
    for line in lines:
        table.add_row(line.key, line.account_path, str(line.amount), line.currency,
                      line.type or "")
    return table


def _entry_json(entry, is_ik_replay=None) -> dict:
    value = {"id": entry.id, "ik": entry.ik, "type": entry.type,
             "description": entry.description, "posted": entry.posted.isoformat(),
             "created": entry.created.isoformat(), "tags": entry.tags, "groups": entry.groups,
             "lines": [{"id": l.id, "key": l.key, "account": l.account_path,
                        "amount": str(l.amount), "currency": l.currency, "type": l.type}
                       for l in entry.lines]}
    if isinstance(entry, ledger_sdk.HistoryEntry):
        value.update({"ikVersion": entry.ik_version, "hidden": entry.hidden,
                      "reverses": entry.reverses_id, "reversedBy": entry.reversed_by_id,
                      "reversedAt": entry.reversed_at.isoformat() if entry.reversed_at else None})
    if is_ik_replay is not None:
        value["isIkReplay"] = is_ik_replay
    return value


@app.command("add-ledger-entry")
def add_ledger_entry(
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
        values = dict(_json_option(parameters, "--parameters") or {})
        values.update(_key_values(param, "--param"))
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.add_ledger_entry(
                ik=ik, type=type, parameters=values, ledger=ledger, posted=posted,
                tags=_key_values(tag, "--tag") or None, groups=_key_values(group, "--group") or None,
                lines=_json_option(lines, "--lines"))
        if as_json:
            _emit_json(_entry_json(result.entry, result.is_ik_replay))
            return
        replay = " (replay: already posted)" if result.is_ik_replay else ""
        out.print(f"Posted entry {result.entry.id} ik={result.entry.ik}{replay}",
                  highlight=False)
        if result.entry.description:
            out.print(result.entry.description, highlight=False, markup=False)
        out.print(_lines_table(result.lines))

    _run(body)


@app.command("reverse-ledger-entry")
def reverse_ledger_entry(
        id: Annotated[Optional[str], typer.Option("--id", help="The entry's id.")] = None,
        ik: Annotated[Optional[str], typer.Option("--ik", help="Or the entry's ik (with --ledger).")] = None,
        ledger: Annotated[Optional[str], typer.Option("--ledger", help="The ledger's ik.")] = None,
        api_url: ApiUrl = None, client_id: ClientId = None, client_secret: ClientSecret = None,
        auth_url: AuthUrl = None, auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Reverse an entry: a new entry mirrors its lines at the same posted time. Running it
    again is a replay, never a second reversal."""

    def body():
        if (id is None) == (ik is None):
            _fail("give the entry's --id, or its --ik and --ledger", EXIT_USAGE)
        if ik is not None and ledger is None:
            _fail("--ik needs --ledger", EXIT_USAGE)
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
            result = client.reverse_ledger_entry(id, ik=ik, ledger=ledger)
        if as_json:
            _emit_json({"reversedLedgerEntry": _entry_json(result.reversed_entry),
                        "reversingLedgerEntry": _entry_json(result.reversing_entry),
                        "isIkReplay": result.is_ik_replay})
            return
        replay = " (replay: already reversed)" if result.is_ik_replay else ""
        out.print(f"Reversed entry {result.reversed_entry.id} ik={result.reversed_entry.ik} "
                  f"by entry {result.reversing_entry.id}{replay}", highlight=False)
        out.print(_lines_table(result.reversing_entry.lines))

    _run(body)


@app.command("balance")
def balance(path: Annotated[str, typer.Argument(help="Account path, e.g. liabilities/users:alice/available")],
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
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
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
            _emit_json(value)
            return
        when = f" at {at}" if at is not None else ""
        table = Table("currency", "own", "children", "balance",
                      title=f"{account.path} ({account.type}){when}")
        for row in rows:
            table.add_row(row["currency"], row["own"], row["child"], row["balance"])
        if not rows:
            table.add_row("-", "0", "0", "0")
        out.print(table)

    _run(body)


@app.command("entries")
def entries(ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
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
            flt["tags"] = _key_values(tag, "--tag")
        if group:
            flt["groups"] = _key_values(group, "--group")
        if posted:
            flt["posted"] = posted
        modes = {None: None, "hide": False, "only": True, "all": None}
        if reversed_ not in modes:
            _fail("--reversed: expected hide, only or all", EXIT_USAGE)
        if reversed_ is not None:
            flt["reversed"] = modes[reversed_]
        next_cursor = None
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
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
            _emit_json([_entry_json(e) for e in found])
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
            out.print(_lines_table(entry.lines))
        if not found:
            out.print("no entries")
        if next_cursor:
            out.print(f"more: --after {next_cursor}", highlight=False)

    _run(body)


# ------------------------------------------------------------------ commands: credentials

@app.command("login")
def login(api_url: Annotated[str, typer.Option("--api-url", envvar="LEDGER_API_URL")],
          client_id: Annotated[str, typer.Option("--client-id", envvar="LEDGER_CLIENT_ID")],
          client_secret: Annotated[str, typer.Option("--client-secret",
                                                     envvar="LEDGER_CLIENT_SECRET")],
          auth_url: AuthUrl = None, auth_scope: AuthScope = None,
          verify: Annotated[bool, typer.Option("--verify/--no-verify",
                                               help="Fetch a token to check them first.")] = True):
    """Save the API URL and credentials (mode 0600) for the other commands."""

    def body():
        if verify:
            with ledger_sdk.SyncClient(client_id=client_id, client_secret=client_secret,
                                       api_url=api_url, auth_url=auth_url,
                                       auth_scope=auth_scope, max_retries=2) as client:
                client.token()
        values = {"api_url": api_url, "client_id": client_id, "client_secret": client_secret}
        if auth_url:
            values["auth_url"] = auth_url
        if auth_scope:
            values["auth_scope"] = auth_scope
        path = save_config(values)
        out.print(f"Logged in to {api_url} as {client_id}; saved to {path}", highlight=False)

    _run(body)


@app.command("token")
def token(api_url: ApiUrl = None, client_id: ClientId = None,
          client_secret: ClientSecret = None, auth_url: AuthUrl = None,
          auth_scope: AuthScope = None, as_json: JsonOut = False):
    """Print a fresh access token (for curl: -H "Authorization: Bearer $(ledger token)")."""

    def body():
        with api_client(api_url, client_id, client_secret, auth_url, auth_scope) as client:
            value = client.token()
        if as_json:
            _emit_json({"access_token": value, "token_type": "Bearer"})
        else:
            print(value)

    _run(body)


# ------------------------------------------------------------------ commands: admin

@clients_app.command("create")
def api_client_create(name: Annotated[str, typer.Option("--name")],
                      scope: Annotated[str, typer.Option(
                          "--scope", help="write (full access) or read (read-only).")] = "write",
                      data_dir: DataDir = Path(".ledger"), as_json: JsonOut = False):
    """Create an API client; its secret is printed once, here, and never again."""

    def body():
        from ledger import clients

        with _AdminDatabase(data_dir) as admin:
            created = _admin(lambda: clients.create_client(admin.db, name, scope))
        if as_json:
            _emit_json({"client_id": created.client_id, "client_secret": created.client_secret,
                        "name": created.client.name, "scope": created.client.scope})
            return
        table = Table("client_id", "client_secret", "name", "scope")
        table.add_row(created.client_id, created.client_secret, created.client.name,
                      created.client.scope)
        out.print(table)
        err.print("Store the secret now: only its hash is kept, it cannot be shown again.")

    _run(body)


@clients_app.command("list")
def api_client_list(data_dir: DataDir = Path(".ledger"), as_json: JsonOut = False):
    """List API clients (never their secrets)."""

    def body():
        from ledger import clients

        with _AdminDatabase(data_dir) as admin:
            found = _admin(lambda: clients.list_clients(admin.db))
        if as_json:
            _emit_json([c.to_dict() for c in found])
            return
        table = Table("client_id", "name", "scope", "created", "revoked")
        for c in found:
            table.add_row(c.id, c.name, c.scope, c.created.isoformat(timespec="seconds"),
                          c.revoked.isoformat(timespec="seconds") if c.revoked else "")
        out.print(table)

    _run(body)


@clients_app.command("revoke")
def api_client_revoke(client_id: Annotated[str, typer.Argument(help="The client to revoke.")],
                      data_dir: DataDir = Path(".ledger"), as_json: JsonOut = False):
    """Revoke an API client: its tokens stop working at once."""

    def body():
        from ledger import clients

        with _AdminDatabase(data_dir) as admin:
            revoked = _admin(lambda: clients.revoke_client(admin.db, client_id))
        if as_json:
            _emit_json(revoked.to_dict())
        else:
            out.print(f"Revoked {revoked.id} ({revoked.name})", highlight=False)

    _run(body)


@app.command("audit")
def audit(ledger: Annotated[str, typer.Option("--ledger", help="The ledger's ik.")],
          data_dir: DataDir = Path(".ledger"), as_json: JsonOut = False):
    """Check a ledger's books from the tables: every line names an entry and an account of
    the ledger, every entry balances, every balance is the sum of its lines, every running
    total is right. Exits 1 when something is wrong. Reads everything: run it off-peak."""

    def body():
        from ledger import service

        with _AdminDatabase(data_dir) as admin:
            problems = _admin(lambda: service.audit(admin.db, ledger))
        if as_json:
            _emit_json({"ledger": ledger, "ok": not problems,
                        "problems": [{"check": p.check, "detail": p.detail} for p in problems]})
        elif problems:
            for p in problems:
                err.print(str(p), highlight=False)
        else:
            out.print(f"The books of {ledger} hold.", highlight=False)
        if problems:
            raise typer.Exit(EXIT_REFUSED)

    _run(body)


@app.command("migrate")
def migrate(data_dir: DataDir = Path(".ledger")):
    """Bring the database schema up to date (Alembic migrations)."""

    def body():
        from ledger.migrate import upgrade

        with _AdminDatabase(data_dir, migrate=False) as admin:
            _admin(lambda: upgrade(admin.url))
        out.print("The database is up to date.")

    _run(body)


@app.command("up")
def up(data_dir: DataDir = Path(".ledger"),
       host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
       port: Annotated[int, typer.Option("--port")] = 8000):
    """Run everything on this machine: database, Redis, migrations, API, worker and beat."""
    from api.up import main

    main(data_dir=data_dir, host=host, port=port)


def main() -> None:  # pragma: no cover - `python -m api.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
