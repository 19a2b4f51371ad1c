"""Fixtures shared by every test: a private PostgreSQL database and a private Redis database
per test run, on the servers named by DATABASE_URL / REDIS_URL, else on embedded servers.

A run never shares data with another run (several agents and CI jobs run the suite at once
against the same servers): it creates its own database `ledger_test_<random>` and claims a
Redis database index nobody else holds. Tests never clean tables; they create their own
ledger with a `unique()` ik instead, so tests within a run don't collide either.
"""
from __future__ import annotations

import os
import random
import secrets
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.db import Database, normalize_url
from ledger.embedded import embedded_postgres, embedded_redis, stop_embedded_postgres
from ledger.migrate import upgrade
from tests import keys  # noqa: F401  (LEDGER_SECRET_KEY for every process of the run)

RUN_ID = secrets.token_hex(4)
REDIS_CLAIM_KEY = "ledger-test:claimed-by"
# Longer than any test session; a crashed run's claim then expires on its own.
REDIS_CLAIM_SECONDS = 12 * 3600


def pytest_sessionstart(session):
    """The CLI, API and worker processes the tests start import the project from source.
    Where PYTHONDONTWRITEBYTECODE is set (as on the CI machines) each of them compiles
    every module of ours again; compiled once here, they read the bytecode instead
    (tests/e2e/test_cli.py: 64 s -> 46 s). Up-to-date files are left alone."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("api", "ledger", "workers", "ledger_sdk"):
        compileall.compile_dir(root / package, quiet=1)


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@pytest.fixture(scope="session")
def database_url():
    """URL of a fresh, migrated database of this run, dropped at the end."""
    server_url = os.environ.get("DATABASE_URL") or ""
    embedded_dir = None
    if not server_url:
        # Under /tmp itself rather than pytest's tmp_path: pgserver runs postgres as another
        # user when we are root and opens every parent folder to it, and pytest closes its
        # own base folder again at the start of each run, under a concurrent run's feet.
        embedded_dir = Path(tempfile.mkdtemp(prefix="ledger-test-"))
        server_url = embedded_postgres(embedded_dir)

    name = f"ledger_test_{RUN_ID}"
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT",
                             poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.exit(
            f"cannot reach PostgreSQL at DATABASE_URL={_redacted(server_url)}: {exc.orig}\n"
            "Start that server, or unset DATABASE_URL to run the tests on an embedded one.",
            returncode=3,
        )
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        if embedded_dir is not None:
            stop_embedded_postgres(embedded_dir)
            shutil.rmtree(embedded_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def unique():
    """``unique("ledger")`` -> ``"ledger-3f9a0c1b2d"``: iks and keys no other test uses."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{secrets.token_hex(5)}"

    return make


def _with_redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(index)
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{index}"))


def _claim_redis_db(server_url: str) -> str:
    """A database index of the server that no concurrent run holds, emptied for this run."""
    import redis

    for index in random.sample(range(1, 16), 15):
        url = _with_redis_db(server_url, index)
        client = redis.Redis.from_url(url)
        try:
            if client.set(REDIS_CLAIM_KEY, RUN_ID, nx=True, ex=REDIS_CLAIM_SECONDS):
                # Data a crashed run left behind goes; the claim survives the flush.
                with client.pipeline(transaction=True) as pipe:
                    pipe.flushdb()
                    pipe.set(REDIS_CLAIM_KEY, RUN_ID, ex=REDIS_CLAIM_SECONDS)
                    pipe.execute()
                return url
        except redis.ConnectionError as exc:
            pytest.exit(
                f"cannot reach Redis at REDIS_URL={_redacted(server_url)}: {exc}\n"
                "Start that server, or unset REDIS_URL to run the tests on an embedded one.",
                returncode=3,
            )
        finally:
            client.close()
    pytest.exit(f"every Redis database 1..15 of {_redacted(server_url)} is claimed by "
                f"another test run (key {REDIS_CLAIM_KEY}); wait for them or flush one.",
                returncode=3)


@pytest.fixture(scope="session")
def redis_url():
    """URL of a Redis database (index 1..15) that only this run uses, emptied at both ends."""
    import redis

    server_url = os.environ.get("REDIS_URL") or ""
    embedded = embedded_dir = None
    if not server_url:
        embedded_dir = Path(tempfile.mkdtemp(prefix="ledger-test-"))
        embedded = embedded_redis(embedded_dir)
        server_url = embedded.redis_url
    url = _claim_redis_db(server_url)
    try:
        yield url
    finally:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        if embedded is not None:
            embedded.stop(save=False)
            shutil.rmtree(embedded_dir, ignore_errors=True)
