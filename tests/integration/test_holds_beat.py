"""The beat expires holds within seconds of their expiresAt (a real worker with beat)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from ledger import service
from ledger.service import EntryRequest
from tests.integration.conftest import user_path


def test_beat_expires_a_hold_within_seconds(pipeline, db):
    pipeline.worker(partitions=[], beat=True, LEDGER_HOLD_EXPIRY_EVERY_SECONDS="0.5")
    ledger = pipeline.new_ledger()
    service.add_ledger_entry(db, ledger, EntryRequest(
        ik="d", type="deposit", parameters={"user": "u", "amount": "100"}))
    expires = datetime.now(timezone.utc) + timedelta(seconds=1)
    held = service.add_ledger_hold(db, ledger, EntryRequest(
        ik="w", type="withdraw", parameters={"user": "u", "amount": "60"}), expires)
    assert service.hold_balances(db, ledger, user_path("u")).own_available == {"USD": 40}
    while service.get_ledger_hold(db, held.entry.id).status == "pending":
        assert datetime.now(timezone.utc) < expires + timedelta(seconds=5), "not expired in 5 s"
        time.sleep(0.1)
    hold = service.get_ledger_hold(db, held.entry.id)
    assert hold.status == "expired" and hold.resolved >= expires
    assert service.hold_balances(db, ledger, user_path("u")).own_available == {"USD": 100}
    assert service.audit(db, ledger) == []
