"""Embedded servers start in an empty folder, serve, are reused, and stop, whatever
DATABASE_URL / REDIS_URL say (those only decide what the other tests run on)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from kombu import Connection

from ledger.db import Database
from ledger.embedded import resolve_urls


@pytest.fixture
def data_dir():
    # Not tmp_path: see the database_url fixture for why embedded PostgreSQL lives in /tmp.
    path = Path(tempfile.mkdtemp(prefix="ledger-embedded-test-"))
    yield path / "data"  # a folder that does not exist yet, as on a fresh machine
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_servers_start_serve_and_stop(data_dir, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)

    database_url, redis_url, keepalive = resolve_urls(data_dir)
    try:
        assert database_url.startswith("postgresql://")
        db = Database(database_url)
        try:
            with db.transaction() as conn:
                assert conn.exec_driver_sql("select 40 + 2").scalar() == 42
        finally:
            db.dispose()

        client = redis.Redis.from_url(redis_url)
        assert client.set("k", "v") and client.get("k") == b"v"
        # Celery reaches Redis through kombu, which must accept the same URL.
        with Connection(redis_url) as conn:
            queue = conn.SimpleQueue("ledger.test")
            queue.put({"n": 1})
            assert queue.get(timeout=5).payload == {"n": 1}
            queue.close()

        # A second start on the same folder reuses both servers and owns neither.
        again_db, again_redis, second = resolve_urls(data_dir)
        assert (again_db, again_redis) == (database_url, redis_url)
        assert second.postgres_data_dir is None and not second.redis.started
        second.stop()
        assert client.ping()
    finally:
        keepalive.stop()

    with pytest.raises(redis.ConnectionError):
        client.ping()
    engine = sa.create_engine(Database(database_url).url)
    with pytest.raises(sa.exc.OperationalError):
        engine.connect()
    engine.dispose()


def test_urls_given_start_nothing(data_dir):
    database_url, redis_url, keepalive = resolve_urls(
        data_dir, "postgresql://u@db.example:5432/x", "redis://cache.example:6379/0")
    assert database_url == "postgresql://u@db.example:5432/x"
    assert redis_url == "redis://cache.example:6379/0"
    assert keepalive.postgres_data_dir is None and keepalive.redis is None
    assert not data_dir.exists()


def test_adopted_servers_are_stopped_by_the_adopter(data_dir, monkeypatch):
    """`ledger up` holds its folder's lock, so servers it finds running there were left by a
    run that died; it adopts them and stops them when it stops (before, they outlived it)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)

    database_url, redis_url, left_behind = resolve_urls(data_dir)
    try:
        again_db, again_redis, adopter = resolve_urls(data_dir, adopt=True)
        assert (again_db, again_redis) == (database_url, redis_url)
        assert adopter.servers()["postgres_data_dir"] == str(data_dir.resolve())
        assert adopter.servers()["redis_pid"] == left_behind.redis.client.pid
        adopter.stop()

        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(redis_url).ping()
        engine = sa.create_engine(Database(database_url).url)
        with pytest.raises(sa.exc.OperationalError):
            engine.connect()
        engine.dispose()
    finally:
        left_behind.stop()


def test_database_only_starts_no_redis(data_dir):
    database_url, redis_url, keepalive = resolve_urls(data_dir, redis=False)
    try:
        assert database_url.startswith("postgresql://") and redis_url == ""
        assert keepalive.redis is None and not (data_dir / "redis.db").exists()
    finally:
        keepalive.stop()
