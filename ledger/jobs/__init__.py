"""Asynchronous posting: the outbox of posting jobs and the work done on it.

A job is one entry request accepted for later posting. Accepting writes the job rows of a
submission in one transaction; a worker later posts the pending jobs of one partition, in
submission order, through the same engine as the synchronous path
(`ledger.posting.engine.post_entries`), and records each outcome on its row.

Everything here is plain database work, so the API and the workers stay thin: they call
one function of this package and translate its result. This package knows nothing of Celery;
whoever sends the "doorbell" that wakes a partition's worker passes it in as a callback.
"""
