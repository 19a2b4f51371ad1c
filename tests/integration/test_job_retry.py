"""service.retry_job: a failed job goes back to its partition's queue and posts once its
cause is fixed; jobs of another ledger, unknown ids and jobs not failed are refused, typed."""
from __future__ import annotations

import pytest

from ledger import service
from ledger.errors import BadRequestError, NotFoundError
from tests.e2e.ui_world import build, fund_carol


def test_retry_after_the_cause_is_fixed_posts_once(db, unique):
    world = build(db, unique)
    job = service.retry_job(db, world.ledger, str(world.failed_job.id))
    assert (job.status, job.error, job.finished) == (service.PENDING, None, None)
    assert service.queue_snapshot(db, 16).pending >= 1
    fund_carol(db, world.ledger)
    service.work_partition(db, job.partition)
    posted = service.get_job(db, job.id)
    assert posted.status == service.POSTED and posted.entry_id
    assert service.get_ledger_entry(db, ledger_ik=world.ledger, ik="tr-carol").id == posted.entry_id
    with pytest.raises(BadRequestError) as info:
        service.retry_job(db, world.ledger, str(job.id))
    assert info.value.code == "job_not_failed" and "posted" in info.value.message


def test_retry_refuses_other_ledgers_and_unknown_ids(db, unique):
    world, other = build(db, unique), build(db, unique)
    with pytest.raises(NotFoundError) as info:
        service.retry_job(db, other.ledger, str(world.failed_job.id))
    assert info.value.code == "job_not_found" and info.value.field == "id"
    for bad in ("0", "x", "99999999999"):
        with pytest.raises(NotFoundError):
            service.retry_job(db, world.ledger, bad)
    assert service.get_job(db, world.failed_job.id).status == service.FAILED
