"""What every ``ledger`` command shares: output (tables, JSON), failures and exit codes,
schema files, the saved login, the API client, and the database of the
admin commands.

Exit codes scripts can rely on: 0 done; 1 refused (bad request, not found, invalid schema);
2 usage error or missing configuration; 3 transient failure (unreachable, internal error:
retry later); 4 authentication or permission failure.
"""
from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

import ledger_sdk
from ledger.settings import Secret, Settings
from ledger_sdk import errors as sdk_errors

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TRANSIENT = 3
EXIT_AUTH = 4

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class _Service:
    """``ledger.service``, imported when a command first uses it. It brings SQLAlchemy, the
    Stripe client and the rest of the server (half a second), which the commands that only
    talk to the API over HTTP (``ledger balance``, ``ledger post``...) never need, and
    every command paid for it at start."""

    def __getattr__(self, name: str) -> Any:
        from ledger import service as module

        return getattr(module, name)


service = _Service()


# ------------------------------------------------------------------ failures and output

class Failure(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = EXIT_REFUSED):
    raise Failure(message, code)


def emit_json(value: Any) -> None:
    # Plain print, not rich: scripts parse this, it must be exactly JSON.
    print(json.dumps(value, indent=2, default=str))


def run(fn, *args, **kwargs):
    """Run a command body, turning every expected failure into a message and an exit code."""
    _talking_to.clear()
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
        if _talking_to:
            err.print(f"  talking to the {_talking_to[0].describe()}", highlight=False,
                      markup=False)
        raise typer.Exit(code)


def folding_table(*headers: str, **kwargs) -> Table:
    """A table whose cells fold onto more lines when the terminal is narrow, never cut:
    "liabilities/users:alic…" would make two users look the same, a cut amount or id
    would be a different one."""
    made = Table(**kwargs)
    for header in headers:
        made.add_column(header, overflow="fold")
    return made


def lines_table(lines) -> Table:
    table = folding_table("key", "account", "amount", "currency", "type")
    for line in lines:
        table.add_row(line.key, line.account_path, str(line.amount), line.currency,
                      line.type or "")
    return table


def entry_json(entry, is_ik_replay=None) -> dict:
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


# ------------------------------------------------------------------ schema files

_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_env(value: Any, environ: Mapping[str, str], where: str = "",
                   missing: Optional[list] = None) -> Any:
    """``${ENV_VAR}`` in every string of a parsed document (seeds 002/003: the CLI swaps in
    per-environment ids). ``{{parameters}}`` are left alone: they belong to the schema."""
    if missing is None:
        missing = []
    if isinstance(value, str):
        def swap(match):
            name = match.group(1)
            if name not in environ:
                missing.append((name, where or "(top level)"))
                return match.group(0)
            return environ[name]
        return _ENV_VAR.sub(swap, value)
    if isinstance(value, list):
        return [substitute_env(v, environ, f"{where}[{i}]", missing)
                for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {substitute_env(k, environ, where, missing):
                substitute_env(v, environ, f"{where}.{k}" if where else k, missing)
                for k, v in value.items()}
    return value


def load_schema_file(path: Path, environ: Mapping[str, str]) -> dict:
    import json5

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        document = json5.loads(text)
    except ValueError as exc:
        fail(f"{path} is not valid JSON/JSONC: {exc}")
    if not isinstance(document, dict):
        fail(f"{path}: a schema is a JSON object with key, chartOfAccounts, ledgerEntries")
    missing: list = []
    document = substitute_env(document, environ, "", missing)
    if missing:
        listed = "; ".join(f"${{{name}}} at {where}" for name, where in missing)
        fail(f"{path}: environment variable(s) not set: {listed}")
    return document


def key_values(items: list[str], option: str) -> dict[str, str]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{option} {item!r}: expected KEY=VALUE", EXIT_USAGE)
        result[key] = value
    return result


def json_option(text: Optional[str], option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"{option}: not valid JSON: {exc}", EXIT_USAGE)


# ------------------------------------------------------------------ API connection

def config_path(settings: Settings) -> Path:
    return settings.config_path or Path(typer.get_app_dir("ledger")) / "config.json"


def load_config(settings: Settings) -> dict:
    path = config_path(settings)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        fail(f"cannot read the login configuration {path}: {exc}", EXIT_USAGE)


def save_config(settings: Settings, values: dict) -> Path:
    path = config_path(settings)
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


@dataclass(frozen=True)
class ApiTarget:
    """The server an API command talks to, with where its URL and credentials came from:
    an error from a server the user did not name must say which one it was."""

    url: str
    client_id: Optional[str]
    client_secret: Optional[str]
    url_from: str
    credentials_from: str

    def describe(self) -> str:
        return (f"API {self.url} (from {self.url_from}; credentials from "
                f"{self.credentials_from})")


# The target of the command running in this process, for `run`'s error messages.
_talking_to: list[ApiTarget] = []


def _running_up(settings: Settings, config: Path):
    """(record, API URL) of the `ledger up` running on this machine (LEDGER_DATA_DIR's,
    ./.ledger's, or the only one); a usage failure that says where it looked."""
    from api.cli import runtime

    chosen = settings.environ.get("LEDGER_DATA_DIR")
    try:
        record = runtime.find_running(settings, Path(chosen) if chosen else None)
    except runtime.NotFound as exc:
        fail(f"no API to talk to: no --api-url / LEDGER_API_URL, no login saved in {config}, "
             f"and {exc}. Start `ledger up`, or run `ledger login --api-url URL "
             "--client-id ID --client-secret SECRET`.", EXIT_USAGE)
    url = record.values.get("api_url")
    if not url:
        fail(f"the `ledger up` running on {record.data_dir} recorded no API URL; give "
             "--api-url or run `ledger login`", EXIT_USAGE)
    return record, url


def running_up_url(settings: Settings) -> str:
    """The API URL of the `ledger up` running on this machine, as ``api_target`` finds it
    when nothing else names a server."""
    return _running_up(settings, config_path(settings))[1]


def _running_up_target(settings: Settings, client_id, client_secret,
                       config: Path) -> ApiTarget:
    """The API of the running `ledger up`, with the client it created on its first start."""
    from api.cli import runtime

    record, url = _running_up(settings, config)
    url_from = f"the `ledger up` running on {record.data_dir}"
    if client_id and client_secret:
        return ApiTarget(url, client_id, client_secret, url_from,
                         "--client-id / LEDGER_CLIENT_ID")
    kept = runtime.first_client(record.data_dir)
    if kept is None:
        fail(f"no API credentials for {url} ({url_from}): {record.data_dir / runtime.CLIENT_NAME} "
             "does not exist (the data folder predates it). Create a client with `ledger "
             f"api-client create --name cli`, then `ledger login --api-url {url} "
             "--client-id ID --client-secret SECRET`.", EXIT_USAGE)
    return ApiTarget(url, kept["client_id"], kept["client_secret"], url_from,
                     str(record.data_dir / runtime.CLIENT_NAME))


def api_target(settings: Settings, api_url, client_id, client_secret) -> ApiTarget:
    """Flags / LEDGER_* variables, else the saved login, else the running `ledger up`."""
    saved = load_config(settings)
    config = config_path(settings)
    if not api_url and not saved.get("api_url"):
        return _running_up_target(settings, client_id, client_secret, config)
    url_from = "--api-url / LEDGER_API_URL" if api_url else f"the login saved in {config}"
    given = bool(client_id and client_secret)
    target = ApiTarget(api_url or saved["api_url"], client_id or saved.get("client_id"),
                       client_secret or saved.get("client_secret"), url_from,
                       "--client-id / LEDGER_CLIENT_ID" if given
                       else f"the login saved in {config}")
    if not (target.client_id and target.client_secret):
        fail(f"no API credentials for {target.url} (from {url_from}): run `ledger login "
             "--api-url URL --client-id ID --client-secret SECRET`, or set LEDGER_CLIENT_ID "
             "and LEDGER_CLIENT_SECRET", EXIT_USAGE)
    return target


def api_client(settings: Settings, api_url, client_id, client_secret, auth_url,
               auth_scope) -> ledger_sdk.SyncClient:
    saved = load_config(settings)
    target = api_target(settings, api_url, client_id, client_secret)
    _talking_to[:] = [target]
    return ledger_sdk.SyncClient(client_id=target.client_id, client_secret=target.client_secret,
                                 api_url=target.url, auth_url=auth_url or saved.get("auth_url"),
                                 auth_scope=auth_scope or saved.get("auth_scope"),
                                 max_retries=3)


# ------------------------------------------------------------------ database (admin)

DataDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", envvar="LEDGER_DATA_DIR", show_default=False,
    help="Data folder of a `ledger up` (default: ./.ledger if it holds a database, else the "
         "running `ledger up`); not used when DATABASE_URL is set.")]


class AdminDatabase:
    """The database for admin commands (`api.cli.runtime.locate`): DATABASE_URL, else the
    one a running `ledger up` records, else the embedded one of an existing data folder
    (started for the command and stopped after). Never a new one."""

    def __init__(self, settings: Settings, data_dir: Optional[Path], migrate: bool = True):
        from api.cli.runtime import NotFound, locate

        try:
            self.located = locate(settings, data_dir)
        except NotFound as exc:
            fail(str(exc), EXIT_USAGE)
        self.config = replace(settings, data_dir=self.located.data_dir,
                              database_url=self.located.database_url)
        if not settings.secret_key:
            # The key `ledger up` keeps in its data folder when LEDGER_SECRET_KEY is unset.
            key = service.key_file_value(self.located.data_dir, create=False)
            if key:
                self.config = replace(self.config, secret_key=Secret(key))
        self.migrate = migrate
        self.keepalive = None
        self.db = None

    def __enter__(self):
        from ledger.db import Database
        from ledger.embedded import EmbeddedServerError, resolve_servers

        url = self.config.database_url
        if not url:
            try:
                resolved, self.keepalive = resolve_servers(self.config, database_only=True)
            except EmbeddedServerError as exc:
                fail(str(exc), EXIT_TRANSIENT)
            url = resolved.database_url
            if self.migrate:
                # Nobody else migrates an embedded database a command starts on its own.
                from ledger.migrate import upgrade
                upgrade(url)
        self.url = url
        self.db = Database(url)
        _admin_open[:] = [self]
        return self

    def __exit__(self, *exc):
        _admin_open.clear()
        if self.db is not None:
            self.db.dispose()
        if self.keepalive is not None:
            self.keepalive.stop()

    def unreachable(self, reason: object) -> str:
        """Why the database could not be used, which one it was (the URL, its password
        hidden, and where it came from), and what to do next."""
        from sqlalchemy.engine import make_url

        url = make_url(self.url).render_as_string(hide_password=True)
        folder = self.located.data_dir
        if self.keepalive is not None:
            where = f"the embedded PostgreSQL of {folder}, started for this command"
            then = f"its log is in {folder / 'logs'}"
        elif self.located.record is not None:
            where = f"the `ledger up` running on {folder}"
            then = "is it still running? `ledger status` says"
        else:
            where = "DATABASE_URL"
            then = ("check that PostgreSQL runs and accepts connections there, and the URL's "
                    "user, password and database; or unset DATABASE_URL to use this "
                    "machine's `ledger up`")
        reason = " ".join(str(reason).split())
        return f"cannot reach the database at {url} (from {where}): {reason}\n  next: {then}."


# The database of the admin command running in this process, for `run_admin`'s messages.
_admin_open: list[AdminDatabase] = []


def run_admin(fn):
    """Database errors of admin commands as messages, not tracebacks."""
    import sqlalchemy.exc

    from ledger.errors import LedgerError

    try:
        return fn()
    except LedgerError as exc:
        code = EXIT_TRANSIENT if exc.retryable else EXIT_REFUSED
        cause = exc.__cause__
        if _admin_open and isinstance(cause, sqlalchemy.exc.OperationalError):
            fail(_admin_open[0].unreachable(cause.orig), code)
        fail(f"{exc.code}: {exc.message}", code)
    except sqlalchemy.exc.ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42P01":
            fail("the database has no API client tables yet: run `ledger migrate`")
        raise
    except sqlalchemy.exc.OperationalError as exc:
        if _admin_open:
            fail(_admin_open[0].unreachable(exc.orig), EXIT_TRANSIENT)
        fail(f"cannot reach the database: {exc.orig}", EXIT_TRANSIENT)
