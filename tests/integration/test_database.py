"""The shared fixtures give each run its own migrated database and Redis database."""
from __future__ import annotations

import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url


def test_migrations_ran(db):
    assert sa.inspect(db.engine).has_table("alembic_version")


def test_database_belongs_to_this_run(db, database_url):
    with db.transaction() as conn:
        name = conn.exec_driver_sql("select current_database()").scalar()
    assert name == make_url(database_url).database
    assert name.startswith("ledger_test_") and len(name) > len("ledger_test_")


def test_unique_never_repeats(unique):
    values = {unique("ik") for _ in range(1000)}
    assert len(values) == 1000
    assert all(v.startswith("ik-") for v in values)


def test_redis_database_is_claimed_by_this_run(redis_url):
    from tests.conftest import REDIS_CLAIM_KEY, RUN_ID

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.connection_pool.connection_kwargs.get("db", 0) != 0
        assert client.get(REDIS_CLAIM_KEY) == RUN_ID.encode()
        client.set("probe", "1")
        assert client.get("probe") == b"1"
    finally:
        client.close()
