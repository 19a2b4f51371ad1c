"""Connections to PostgreSQL, and the retry of transient faults around a transaction."""
from __future__ import annotations

import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.sql.elements import TextClause

from ledger.errors import InternalError

T = TypeVar("T")

DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 20

# SQLSTATEs that mean "run the same transaction again": serialization failure, deadlock,
# and the connection-level faults of a restarting or failing-over server.
# query_canceled: the statement ran past statement_timeout. Not retried here (it would run
# as long again), but the caller may retry later, when the database is less busy.
STATEMENT_TIMEOUT_SQLSTATE = "57014"
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "08000",
                       "08003", "08006", "08001", "08004"}


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Database:
    """One SQLAlchemy engine plus the ledger's transaction discipline."""

    def __init__(self, url: str, *, statement_timeout_seconds: float | None = None,
                 **engine_kw):
        self.url = normalize_url(url)
        if statement_timeout_seconds:
            # Set at connect time (libpq options), so every statement of every session
            # of this engine has it without a round trip per transaction. The API's
            # engine has one (a request must not hold a connection for minutes); the
            # workers' engine has none: their batches are long on purpose.
            millis = max(1, int(statement_timeout_seconds * 1000))
            connect_args = dict(engine_kw.pop("connect_args", None) or {})
            options = connect_args.get("options", "")
            connect_args["options"] = f"{options} -c statement_timeout={millis}".strip()
            engine_kw["connect_args"] = connect_args
        # A connection is pinged before use only after it sat idle in the pool (see
        # `_ping_when_idle`): a ping before every checkout was a whole round trip per
        # request, as long as a balance read's own statements.
        engine_kw.setdefault("pool_pre_ping", False)
        # Errors must never carry statement parameters into logs: they can hold secrets
        # (API client hashes, Stripe keys) and whole batches of customer data.
        engine_kw.setdefault("hide_parameters", True)
        engine_kw.setdefault("pool_size", DEFAULT_POOL_SIZE)
        engine_kw.setdefault("max_overflow", DEFAULT_MAX_OVERFLOW)
        self._engine_kw = engine_kw
        self.engine: Engine = self._create_engine()

    def _create_engine(self) -> Engine:
        engine = sa.create_engine(self.url, **self._engine_kw)
        if not self._engine_kw["pool_pre_ping"]:
            _ping_when_idle(engine)
        return engine

    def max_connections(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SHOW max_connections").scalar())

    def fit_pool(self, processes: int, reserved: int) -> "PoolSize":
        """Size this engine's pool for one of ``processes`` alike (see `pool_for`), before
        it serves anything: the engine is replaced, so no checked-out connection may
        exist."""
        size = pool_for(self.max_connections(), processes, reserved)
        if (size.pool_size, size.max_overflow) != (self._engine_kw["pool_size"],
                                                   self._engine_kw["max_overflow"]):
            self.engine.dispose()
            self._engine_kw.update(pool_size=size.pool_size, max_overflow=size.max_overflow)
            self.engine = self._create_engine()
        return size

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with _typed_timeout(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which each statement is a transaction of its own: no BEGIN and
        COMMIT round trips, which cost a read of one statement as much as the statement
        itself. Only for reads of one statement: several would each see their own
        snapshot. Writes go through `run` or `transaction`."""
        with _typed_timeout(), self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            driver.autocommit = True
            try:
                yield conn
            finally:
                _end_autocommit(conn, driver)

    def run(self, fn: Callable[[Connection], T], *, attempts: int = 8) -> T:
        """Run ``fn`` in a transaction, retrying it whole on deadlocks and serialization
        failures. Our own errors (LedgerError) propagate at once: they are not transient."""
        delay = 0.005
        for attempt in range(1, attempts + 1):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except DBAPIError as exc:
                if sqlstate(exc) == STATEMENT_TIMEOUT_SQLSTATE:
                    raise statement_timeout_error() from exc
                if not is_retryable(exc) or attempt == attempts:
                    if is_retryable(exc) or isinstance(exc, OperationalError):
                        raise InternalError(
                            "database_unavailable",
                            "the database did not complete the request; retry it",
                        ) from exc
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _typed_timeout() -> Iterator[None]:
    """A statement stopped by statement_timeout raised as the typed, retryable ``timeout``."""
    try:
        yield
    except DBAPIError as exc:
        if sqlstate(exc) == STATEMENT_TIMEOUT_SQLSTATE:
            raise statement_timeout_error() from exc
        raise


def _end_autocommit(conn: Connection, driver) -> None:
    """Hand the connection back to the pool as every other is: in transactions again. One
    that cannot be (broken meanwhile) is dropped from the pool instead."""
    try:
        driver.autocommit = False
    except Exception as exc:  # the driver's error for a connection not idle or gone
        conn.invalidate(exc)


# A connection idle in the pool longer than this is pinged before use: a server restart or
# an idle-session timeout closes idle connections; a busy connection that breaks is caught
# by the disconnect handling (SQLAlchemy invalidates the whole pool) and `Database.run`'s
# retry.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    @sa.event.listens_for(engine, "checkin")
    def checkin(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def checkout(dbapi_connection, record, proxy):
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:
            # The pool drops this connection and checks out (or opens) another.
            raise sa.exc.DisconnectionError() from exc


@dataclass(frozen=True)
class PoolSize:
    pool_size: int
    max_overflow: int
    max_connections: int
    processes: int
    reserved: int

    @property
    def per_process(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def starved(self) -> bool:
        """Even one connection per process does not fit under the server's limit."""
        return (self.processes * (self.per_process + LISTENING_CONNECTIONS) + self.reserved
                >= self.max_connections)

    def describe(self) -> str:
        total = self.processes * (self.per_process + LISTENING_CONNECTIONS)
        text = (f"connection pool: {self.processes} API process(es) x (pool {self.pool_size}"
                f" + overflow {self.max_overflow} + {LISTENING_CONNECTIONS} listening for "
                f"finished jobs) = {total}, plus {self.reserved} reserved "
                f"for workers and admin, under PostgreSQL's max_connections "
                f"{self.max_connections}")
        if self.starved:
            text += ("; TOO MANY: raise max_connections, or lower LEDGER_API_PROCESSES or "
                     "LEDGER_DB_RESERVED_CONNECTIONS")
        return text


# Held by an API process beside its pool while requests wait for jobs (ledger/jobs/waiting).
LISTENING_CONNECTIONS = 1


def pool_for(max_connections: int, processes: int, reserved: int) -> PoolSize:
    """The pool of one API process out of ``processes``: all of them at their fullest,
    with their listening connection, plus ``reserved`` connections for everyone else, stay
    below ``max_connections``. A third of a process's pool is kept open, the rest is
    overflow opened under load; never more than the defaults (10 + 20), never less than one
    connection."""
    processes = max(1, processes)
    share = (max_connections - reserved - 1) // processes - LISTENING_CONNECTIONS
    per_process = max(1, min(DEFAULT_POOL_SIZE + DEFAULT_MAX_OVERFLOW, share))
    pool_size = min(DEFAULT_POOL_SIZE, max(1, per_process // 3))
    return PoolSize(pool_size, per_process - pool_size, max_connections, processes,
                    reserved)


class Pending:
    """Writes that return nothing, kept until ``send`` puts them on the wire together: one
    round trip (psycopg's pipeline mode) instead of one each, in the order they were added,
    in the caller's transaction. For the statements a posting makes while it holds its hot
    balance rows: each round trip there is time no other transaction can post to them.

    Send before anything reads what they write. A failure is raised as SQLAlchemy raises
    it (a ``DBAPIError`` carrying the driver's error), so the retry of transient faults
    treats it alike; a broken connection is marked invalid, as SQLAlchemy does."""

    def __init__(self) -> None:
        self._statements: list[tuple[TextClause, dict]] = []

    def add(self, statement: TextClause, params: dict) -> None:
        self._statements.append((statement, params))

    def __len__(self) -> int:
        return len(self._statements)

    def send(self, conn: Connection) -> None:
        statements, self._statements = self._statements, []
        if statements:
            _on_driver(conn, [(_driver_sql(conn, statement), params)
                              for statement, params in statements], rows=False)

    def commit(self, conn: Connection) -> None:
        """Send what is kept and commit ``conn``'s transaction, in one round trip: the
        COMMIT goes in the same pipeline. A failure, the commit's included, is raised as
        ``send`` raises it, so ``Database.run`` retries what is transient. ``conn``'s own
        commit afterwards finds the transaction over and sends nothing."""
        statements, self._statements = self._statements, []
        _on_driver(conn, [*((_driver_sql(conn, statement), params)
                            for statement, params in statements), ("COMMIT", None)],
                   rows=False)


def fetch(conn: Connection, statement: TextClause, params: dict) -> list[tuple]:
    """The rows of one statement (none for a write without RETURNING), sent to the driver
    directly: SQLAlchemy's execution context and result objects cost twice the round trip
    itself, and the engine sends a handful of statements per post. Same errors, listeners
    and transaction as ``conn.execute``."""
    return _on_driver(conn, [(_driver_sql(conn, statement), params)], rows=True)


def _on_driver(conn: Connection, compiled: list[tuple[str, dict]], *, rows: bool) -> list:
    """Send ``compiled`` (several: in one pipeline, no rows) on ``conn``'s own driver
    connection, in its transaction."""
    if not conn.in_transaction():
        conn.begin()  # as SQLAlchemy's autobegin would: the caller's commit() covers these
    driver = conn.connection.driver_connection
    # The engine's cursor listeners (statement recorders, tracing) see these statements
    # as they see every other.
    events = conn.dispatch if conn._has_events or conn.engine._has_events else None
    sent, found = [], []
    sql, cursor = compiled[0][0], None
    try:
        with driver.cursor() as cursor:
            with driver.pipeline() if len(compiled) > 1 else nullcontext():
                for sql, params in compiled:
                    context = _Sent()
                    for listener in events.before_cursor_execute if events else ():
                        sql, params = listener(conn, cursor, sql, params, context, False)
                    sent.append((sql, params, context))
                    cursor.execute(sql, params)
            if rows and cursor.description is not None:
                found = cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        broken = driver.closed or driver.broken
        if broken:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error,
                                  hide_parameters=True, connection_invalidated=broken,
                                  dialect=conn.dialect) from None
    finally:
        # Failed or not, what the listeners began ends (a tracer's span is closed).
        for sql, params, context in sent:
            for listener in events.after_cursor_execute if events else ():
                listener(conn, cursor, sql, params, context, False)
    return found


class _Sent:
    """Stands for SQLAlchemy's execution context in the listeners' calls: they may keep
    their own attributes on it between before and after (tracing keeps its span)."""


# By the statement's text: as many entries as the code has statements.
_compiled_sql: dict[str, str] = {}


def _driver_sql(conn: Connection, statement: TextClause) -> str:
    """The statement in the driver's own parameter style (``%(name)s``), compiled once."""
    sql = _compiled_sql.get(statement.text)
    if sql is None:
        sql = _compiled_sql[statement.text] = str(statement.compile(dialect=conn.dialect))
    return sql


def statement_timeout_error() -> InternalError:
    return InternalError("timeout", "the database took too long to answer; retry the request "
                         "later, or ask for less (a smaller page, a narrower filter)",
                         retryable=True)


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return sqlstate(exc) in RETRYABLE_SQLSTATES
