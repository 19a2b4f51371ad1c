"""The event feed (ledger/events/store.py): an event exists exactly when its transaction
commits, and a reader polling while writers race sees every committed event once, in one
order, however the writers' commits interleave."""
from __future__ import annotations

import random
import threading
import time

import pytest
import sqlalchemy as sa

from ledger import service
from ledger.errors import BadRequestError
from ledger.events.store import raise_event, read_events
from tests.integration.helpers import new_ledger, seed000_schema


@pytest.fixture
def ledger_id(db, unique):
    ik = new_ledger(db, unique, seed000_schema(unique("events")))
    with db.transaction() as conn:
        return ik, conn.execute(sa.text("SELECT id FROM ledgers WHERE ik = :ik"),
                                {"ik": ik}).scalar_one()


def _feed(db, ledger, after=None, first=500):
    with db.transaction() as conn:
        return read_events(conn, after=after, ledger_id=ledger, first=first)


def _settled(db, ledger, count, seconds=10.0):
    """The feed once it shows ``count`` events. Any transaction of the server still running
    (another test's, say) holds back events committed after it started, for a moment."""
    deadline = time.monotonic() + seconds
    while True:
        page = _feed(db, ledger)
        if len(page.events) >= count or time.monotonic() > deadline:
            return page
        time.sleep(0.01)


def test_an_event_exists_only_if_its_transaction_commits(db, ledger_id):
    ik, ledger = ledger_id
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            raise_event(conn, ledger_id=ledger, type="entry.posted", payload={"n": 0})
            raise RuntimeError("rolled back")
    with db.transaction() as conn:
        raise_event(conn, ledger_id=ledger, type="entry.posted", payload={"n": 1})
    _settled(db, ledger, 1)
    page = service.list_events(db, ledger_ik=ik)
    assert [e.payload for e in page.events] == [{"n": 1}]
    assert page.events[0].ledger_ik == ik and page.events[0].id.startswith("evt_")
    again = service.list_events(db, ledger_ik=ik, after=page.end_cursor)
    assert again.events == [] and again.end_cursor == page.end_cursor


def test_a_reader_racing_writers_sees_every_event_once_in_one_order(db, ledger_id):
    """Writers hold their transactions open for random times, so later ids often commit
    first; reading by id alone would skip those that commit late."""
    _, ledger = ledger_id
    writers, per_writer = 8, 25
    stop = threading.Event()  # set when every writer is done
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def write(w: int) -> None:
        rng = random.Random(w)
        try:
            for n in range(per_writer):
                with db.transaction() as conn:
                    raise_event(conn, ledger_id=ledger, type="entry.posted",
                                payload={"w": w, "n": n})
                    time.sleep(rng.random() * 0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    def read() -> None:
        cursor, deadline = None, None
        while len(seen) < writers * per_writer:
            if stop.is_set():
                deadline = deadline or time.monotonic() + 10
                if time.monotonic() > deadline:
                    return
            page = _feed(db, ledger, cursor)
            seen.extend((e.payload["w"], e.payload["n"]) for e in page.events)
            cursor = page.end_cursor
            time.sleep(0.002)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join(timeout=60)
    assert not errors and not reader.is_alive()
    assert len(seen) == len(set(seen)) == writers * per_writer
    # Each writer's events appear in the order it committed them.
    for w in range(writers):
        assert [n for ww, n in seen if ww == w] == list(range(per_writer))
    # A second reader from the start sees the same sequence.
    everything, cursor = [], None
    while True:
        page = _feed(db, ledger, cursor, first=37)
        if not page.events:
            break
        everything += [(e.payload["w"], e.payload["n"]) for e in page.events]
        cursor = page.end_cursor
    assert everything == seen


def test_an_open_transaction_holds_back_later_events_until_it_ends(db, ledger_id):
    _, ledger = ledger_id
    with db.engine.connect() as slow:
        tx = slow.begin()
        raise_event(slow, ledger_id=ledger, type="entry.posted", payload={"n": "slow"})
        with db.transaction() as conn:
            raise_event(conn, ledger_id=ledger, type="entry.posted", payload={"n": "fast"})
        # The fast one committed, but the slow one, older, may still commit before it.
        assert _feed(db, ledger).events == []
        tx.commit()
    assert [e.payload["n"] for e in _settled(db, ledger, 2).events] == ["slow", "fast"]


@pytest.mark.parametrize("kwargs, field", [
    ({"after": "bm90LWEtY3Vyc29y"}, "after"),
    ({"after": "%%%"}, "after"),
    ({"after": ""}, "after"),
    ({"types": ["entry.posted", "nope"]}, "types"),
    ({"first": 0}, "first"),
    ({"first": 10_000}, "first"),
])
def test_bad_feed_requests_name_their_field(db, kwargs, field):
    with pytest.raises(BadRequestError) as caught:
        service.list_events(db, **kwargs)
    assert caught.value.field == field


def test_an_unknown_event_type_is_refused_by_the_writer(db, ledger_id):
    _, ledger = ledger_id
    with pytest.raises(ValueError):
        with db.transaction() as conn:
            raise_event(conn, ledger_id=ledger, type="entry.typo", payload={})
