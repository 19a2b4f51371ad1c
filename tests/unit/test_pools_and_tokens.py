"""The API's connection pools fit under PostgreSQL's max_connections whatever the number of
processes (`ledger.db.pool_for`), and its cache of token clients honours a revocation within
its time (`api.auth.ClientCache`)."""
from __future__ import annotations

import time

import pytest

from api.auth import ClientCache, TokenService, Unauthorized
from ledger.db import DEFAULT_MAX_OVERFLOW, DEFAULT_POOL_SIZE, LISTENING_CONNECTIONS, pool_for
from ledger.service import ApiClient


@pytest.mark.parametrize("max_connections", [10, 25, 50, 100, 200, 1000, 5000])
@pytest.mark.parametrize("processes", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("reserved", [0, 5, 20])
def test_every_process_at_its_fullest_stays_under_max_connections(max_connections, processes,
                                                                  reserved):
    size = pool_for(max_connections, processes, reserved)
    assert size.pool_size >= 1 and size.max_overflow >= 0
    assert size.pool_size <= DEFAULT_POOL_SIZE and size.max_overflow <= DEFAULT_MAX_OVERFLOW
    # Each process may also hold a connection listening for finished jobs.
    each = size.pool_size + size.max_overflow + LISTENING_CONNECTIONS
    if processes * (1 + LISTENING_CONNECTIONS) + reserved < max_connections:
        assert not size.starved
        assert processes * each + reserved < max_connections
    else:
        # Not even one connection each: the one left is said loudly at startup.
        assert size.starved and size.per_process == 1
        assert "TOO MANY" in size.describe()


def test_a_large_server_gets_the_default_pool_and_a_small_one_shares():
    assert (pool_for(100, 1, 20).pool_size, pool_for(100, 1, 20).max_overflow) == (10, 20)
    assert (pool_for(100, 2, 20).pool_size, pool_for(100, 2, 20).max_overflow) == (10, 20)
    eight = pool_for(100, 8, 20)
    assert (eight.pool_size, eight.max_overflow) == (2, 6)
    assert ("8 API process(es) x (pool 2 + overflow 6 + 1 listening for finished jobs) = 72"
            in eight.describe())
    assert "max_connections 100" in eight.describe()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def client(scope="write"):
    return ApiClient(id="c1", name="c", scope=scope, created=None, revoked=None)


def test_the_cache_reads_once_per_period_and_sees_a_revocation_after_it():
    clock, reads, state = Clock(), [], {"c1": client()}

    def read(client_id):
        reads.append(client_id)
        return state.get(client_id)

    cache = ClientCache(read, 1.0, clock)
    assert cache.fresh("c1") == (False, None)
    assert cache.get("c1").id == "c1" and cache.get("c1").id == "c1"
    assert reads == ["c1"]
    del state["c1"]  # revoked
    clock.now += 0.999
    assert cache.get("c1") is not None  # within the period: the last read stands
    clock.now += 0.001
    assert cache.fresh("c1") == (False, None)
    assert cache.get("c1") is None and reads == ["c1", "c1"]
    # The revoked state is kept as well: a revoked token in a loop costs no read each.
    assert cache.fresh("c1") == (True, None)


def test_requests_finding_a_client_stale_together_wait_for_one_read():
    import threading
    import time

    clock, reads, started = Clock(), [], threading.Event()

    def read(client_id):
        reads.append(client_id)
        started.set()
        time.sleep(0.2)  # a slow database: the other threads arrive meanwhile
        return client()

    cache = ClientCache(read, 1.0, clock)
    first = threading.Thread(target=cache.get, args=("c1",))
    first.start()
    assert started.wait(5)
    answers = []
    others = [threading.Thread(target=lambda: answers.append(cache.get("c1"))) for _ in range(16)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(5)
    assert reads == ["c1"]
    assert len(answers) == 16 and all(a.id == "c1" for a in answers)
    # Another client is read on its own, not behind this one.
    assert cache.get("c2").id == "c1" and reads == ["c1", "c2"]


def test_the_cache_is_bounded():
    cache = ClientCache(lambda cid: None, 60.0, Clock())
    for i in range(ClientCache.MAX_ENTRIES + 10):
        cache.get(f"c{i}")
    assert len(cache.entries) <= ClientCache.MAX_ENTRIES


class FakeDb:
    pass


def test_tokens_honour_a_revocation_within_the_cache_time(monkeypatch):
    import time

    from ledger import service

    state = {"c1": client()}
    monkeypatch.setattr(service, "active_client", lambda db, cid: state.get(cid))
    monkeypatch.setattr(service, "signing_key", lambda db, keyring: "k" * 64)
    tokens = TokenService(FakeDb(), client_cache_seconds=0.05)
    token = tokens.issue(state["c1"], "write")
    assert tokens.verify_cached(token) is None  # the client never read: the caller must ask
    assert tokens.verify(token).scope == "write"
    assert tokens.verify_cached(token).client_id == "c1"  # fresh: no thread, no read
    state["c1"] = client("read")  # narrowed
    del state["c1"]  # then revoked
    time.sleep(0.06)
    assert tokens.verify_cached(token) is None
    with pytest.raises(Unauthorized, match="revoked"):
        tokens.verify(token)
    with pytest.raises(Unauthorized, match="revoked"):
        tokens.verify_cached(token)


def test_a_narrowed_client_narrows_its_tokens(monkeypatch):
    from ledger import service

    state = {"c1": client()}
    monkeypatch.setattr(service, "active_client", lambda db, cid: state.get(cid))
    monkeypatch.setattr(service, "signing_key", lambda db, keyring: "k" * 64)
    tokens = TokenService(FakeDb(), client_cache_seconds=60)
    token = tokens.issue(state["c1"], "write")
    state["c1"] = client("read")
    assert tokens.verify(token).scope == "read"


def test_a_token_is_verified_once_and_still_expires(monkeypatch):
    import jwt as pyjwt

    from api import auth
    from ledger import service

    monkeypatch.setattr(service, "active_client", lambda db, cid: client())
    monkeypatch.setattr(service, "signing_key", lambda db, keyring: "k" * 64)
    now = [1_000_000.0]
    tokens = TokenService(FakeDb(), client_cache_seconds=60, wall=lambda: now[0])
    token = tokens.issue(client(), "write", ttl_seconds=10**9)
    short = tokens.issue(client(), "read", now=time.time(), ttl_seconds=30)
    decoded = []
    real = pyjwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: decoded.append(1) or real(*a, **k))
    for _ in range(3):
        assert tokens.verify(token).scope == "write"
        assert tokens.verify(short).scope == "read"
    assert len(decoded) == 2  # each signature checked once
    # A forged token is refused every time, and never kept.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(Unauthorized, match="not valid"):
            tokens.verify(forged)
    assert forged not in tokens._verified
    # Past its expiry a kept token is refused without being decoded again.
    now[0] = time.time() + 31
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(short)
    assert tokens.verify(token).scope == "write"
    assert len(decoded) == 4


def test_the_verified_tokens_are_bounded(monkeypatch):
    from ledger import service

    monkeypatch.setattr(service, "active_client", lambda db, cid: client())
    monkeypatch.setattr(service, "signing_key", lambda db, keyring: "k" * 64)
    monkeypatch.setattr(TokenService, "MAX_VERIFIED", 10)
    tokens = TokenService(FakeDb(), client_cache_seconds=60)
    for _ in range(25):
        tokens.verify(tokens.issue(client(), "write"))
    assert len(tokens._verified) <= 10


def test_no_process_pays_for_the_dummy_hash_until_it_checks_a_client():
    import subprocess
    import sys

    from argon2 import PasswordHasher

    from ledger.clients import dummy_hash

    # Importing the CLI (what every `ledger` command does) hashes nothing.
    probe = ("import argon2, api.cli, ledger.clients as c\n"
             "assert c.dummy_hash.cache_info().currsize == 0\n")
    subprocess.run([sys.executable, "-c", probe], check=True)
    # Once made it is a real hash of today's parameters, verified in as long as any.
    assert dummy_hash() is dummy_hash()
    assert PasswordHasher().check_needs_rehash(dummy_hash()) is False
