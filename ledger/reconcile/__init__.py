"""Links, external accounts, synced external transactions (txs) and their reconciliation.

A *link* connects the ledger to an external financial system (a bank, Stripe). Its
*external accounts* hold *txs*: money movements that happened there, synced here by
``sync_custom_txs`` (or by the Stripe sync). A ledger account with ``linkedAccount`` in its
schema mirrors one external account, and each line posted to it matches exactly one tx:
``reconcile_tx`` posts the entry, taking the line's amount and the entry's ``posted`` from the
tx. A tx is reconciled at most once, whoever asks and however often (webhook, backfill,
retries): its row is locked in the reconciling transaction and remembers its entry.
"""
