"""The failed-attempt counters of /oauth2/token (api/throttle.py): in a (fake) Redis shared
by several API processes, and in-process without one."""
from __future__ import annotations

import fakeredis
import pytest
import redis

from api.throttle import FailureLimiter, LocalCounts


def limiter(client, **kw) -> FailureLimiter:
    options = dict(prefix="t.token-failures", window_seconds=300, per_client=3,
                   per_address=5)
    options.update(kw)
    return FailureLimiter(client, **options)


@pytest.fixture
def server():
    return fakeredis.FakeServer()


def test_a_client_id_is_refused_after_its_failures(server):
    guard = limiter(fakeredis.FakeRedis(server=server))
    keys = guard.keys("alice", "10.0.0.1")
    for _ in range(3):
        assert guard.retry_after(keys) is None
        guard.failed(keys)
    wait = guard.retry_after(keys)
    assert wait is not None and 1 <= wait <= 300
    # Another client from another address is untouched.
    assert guard.retry_after(guard.keys("bob", "10.0.0.2")) is None


def test_counts_are_shared_by_processes_on_one_redis(server):
    one = limiter(fakeredis.FakeRedis(server=server))
    two = limiter(fakeredis.FakeRedis(server=server))
    keys = one.keys("alice", "10.0.0.1")
    one.failed(keys)
    two.failed(keys)
    one.failed(keys)
    assert two.retry_after(two.keys("alice", "10.0.0.1")) is not None


def test_an_address_is_refused_after_failures_across_client_ids(server):
    guard = limiter(fakeredis.FakeRedis(server=server))
    for i in range(5):
        guard.failed(guard.keys(f"client-{i}", "10.0.0.9"))
    assert guard.retry_after(guard.keys("fresh", "10.0.0.9")) is not None
    assert guard.retry_after(guard.keys("fresh", "10.0.0.10")) is None


def test_the_window_is_set_once_and_expires(server):
    client = fakeredis.FakeRedis(server=server)
    guard = limiter(client, window_seconds=60)
    keys = guard.keys("alice", None)
    assert len(keys) == 1
    guard.failed(keys)
    ttl = client.ttl(keys[0].name)
    guard.failed(keys)
    assert 0 < client.ttl(keys[0].name) <= ttl <= 60  # not pushed back by later failures
    client.delete(keys[0].name)  # what expiry does
    assert guard.retry_after(keys) is None


def test_a_success_clears_the_client_count_not_the_address(server):
    guard = limiter(fakeredis.FakeRedis(server=server), per_client=2, per_address=2)
    keys = guard.keys("alice", "10.0.0.1")
    guard.failed(keys)
    guard.succeeded(keys)
    guard.failed(keys)
    assert guard.retry_after(guard.keys("alice", "10.0.0.2")) is None
    assert guard.retry_after(guard.keys("bob", "10.0.0.1")) is not None


def test_long_client_ids_make_short_keys(server):
    guard = limiter(fakeredis.FakeRedis(server=server))
    key = guard.keys("x" * 500_000 + "\ud800", None)[0]
    assert len(key.name) < 100


class DownRedis:
    """A Redis that is unreachable."""

    def pipeline(self, *a, **kw):
        raise redis.ConnectionError("down")

    def delete(self, *a):
        raise redis.ConnectionError("down")


@pytest.mark.parametrize("client", [None, DownRedis()], ids=["no redis", "redis down"])
def test_without_redis_the_process_counts_alone(client):
    guard = limiter(client)
    keys = guard.keys("alice", "10.0.0.1")
    for _ in range(3):
        guard.failed(keys)
    assert guard.retry_after(keys) is not None
    guard.succeeded(keys)
    assert guard.retry_after(keys) is None


def test_local_windows_expire():
    now = [1000.0]
    counts = LocalCounts(clock=lambda: now[0])
    counts.incr("k", 10)
    counts.incr("k", 10)
    assert counts.get("k") == (2, 10.0)
    now[0] += 10.5
    assert counts.get("k") == (0, 0.0)
    counts.incr("k", 10)
    assert counts.get("k")[0] == 1
