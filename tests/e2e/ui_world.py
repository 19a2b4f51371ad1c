"""A ledger for the dashboard's tests: entries over several days, a reversal, a second schema
version, and a posting job refused for want of funds (so fixable by a deposit, then
retried)."""
from __future__ import annotations

from dataclasses import dataclass

from ledger import service
from tests.integration.test_history import ALICE, day, history_schema, post

PARTITIONS = 16


@dataclass
class World:
    ledger: str
    deposit_id: str       # bob's deposit: reversible (alice's is not: she spent from it)
    transfer_id: str
    failed_job: service.Job


def second_version(schema: dict) -> dict:
    """The same schema plus an entry type: a compatible version 2."""
    extra = {"type": "fee", "description": "fee of {{amount}} from {{user}}",
             "lines": [{"key": "user", "account": {"path": ALICE.replace("alice", "{{user}}")},
                        "amount": "-{{amount}}"},
                       {"key": "fees", "account": {"path": "income/fees"}, "amount": "{{amount}}"}]}
    doc = dict(schema, ledgerEntries={"types": schema["ledgerEntries"]["types"] + [extra]})
    return doc


def build(db, unique) -> World:
    schema = history_schema(unique("ui"))
    key = service.store_schema(db, schema).key
    service.store_schema(db, second_version(schema))
    ik = unique("ui-ledger")
    service.create_ledger(db, ik, "Dashboard", key)
    post(db, ik, "deposit", posted=day(1), ik="dep-1", user="alice", amount=500,
         tags={"source": "bank"})
    bob = post(db, ik, "deposit", posted=day(3), ik="dep-2", user="bob", amount=200)
    transfer = post(db, ik, "transfer", posted=day(5), ik="tr-1",
                    **{"from": "alice", "to": "bob", "amount": 120})
    # carol has nothing: this job is refused by the transfer's condition when posted.
    submission = service.submit_entries(db, ik, [
        {"ik": "tr-carol", "type": "transfer",
         "parameters": {"from": "carol", "to": "bob", "amount": "50"}}], partitions=PARTITIONS)
    job = submission.jobs[0]
    service.work_partition(db, job.partition)
    failed = service.get_job(db, job.id)
    assert failed.status == service.FAILED, failed
    return World(ik, bob.entry.id, transfer.entry.id, failed)


def fund_carol(db, ledger: str) -> None:
    """What fixes the failed job's cause."""
    post(db, ledger, "deposit", posted=day(6), ik="dep-carol", user="carol", amount=80)
