"""createBalanceMonitor with an ik: the same ik and input replays the monitor, another input
is ik_conflict naming ``ik``; iks are per ledger; a monitor updated later still replays its
create; concurrent creates with one ik make one monitor."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger import service
from ledger.errors import BadRequestError
from tests.integration.test_monitors import SCHEMA, ledger  # noqa: F401 (fixture)
from tests.integration.helpers import new_ledger

ARGS = ("liabilities/users:*/available", "own", {"lt": "0", "currency": "USD"})


def test_same_ik_and_input_replays_another_input_conflicts(db, ledger):  # noqa: F811
    made = service.create_balance_monitor(db, ledger, *ARGS, "overdrawn", ik="m-1")
    assert service.create_balance_monitor(db, ledger, *ARGS, "overdrawn", ik="m-1") == made
    with pytest.raises(BadRequestError) as exc:
        service.create_balance_monitor(db, ledger, *ARGS, "other words", ik="m-1")
    assert exc.value.code == "ik_conflict" and exc.value.message.startswith("ik:")
    with pytest.raises(BadRequestError) as exc:
        service.create_balance_monitor(db, ledger, ARGS[0], "own", {"lt": "1"}, "overdrawn",
                                       ik="m-1")
    assert exc.value.code == "ik_conflict"
    # Without ik every create makes a monitor; an update does not change what ik replays.
    service.create_balance_monitor(db, ledger, *ARGS, "overdrawn")
    service.update_balance_monitor(db, made.id, description="renamed")
    again = service.create_balance_monitor(db, ledger, *ARGS, "overdrawn", ik="m-1")
    assert again.id == made.id and again.description == "renamed"
    assert len(service.list_balance_monitors(db, ledger)) == 2


def test_iks_are_per_ledger_and_bad_iks_name_the_field(db, ledger, unique):  # noqa: F811
    other = new_ledger(db, unique, {**SCHEMA, "key": unique("monitor-ik")})
    a = service.create_balance_monitor(db, ledger, *ARGS, ik="same")
    b = service.create_balance_monitor(db, other, *ARGS, ik="same")
    assert a.id != b.id
    for bad in ("", 7, "x" * 256):
        with pytest.raises(BadRequestError) as exc:
            service.create_balance_monitor(db, ledger, *ARGS, ik=bad)
        assert exc.value.code == "invalid_input" and exc.value.message.startswith("ik:")
    assert len(service.list_balance_monitors(db, ledger)) == 1


def test_concurrent_creates_with_one_ik_make_one_monitor(db, ledger):  # noqa: F811
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda _: service.create_balance_monitor(
            db, ledger, *ARGS, ik="race"), range(12)))
    assert len({m.id for m in made}) == 1
    assert len(service.list_balance_monitors(db, ledger)) == 1
