"""The Stripe link: Stripe balance transactions synced as txs and charges reconciled.

Stripe moves money in *balance transactions* (``txn_...``): a charge's gross amount and its
fee arrive in one of them, pending at first and available on ``available_on``. We sync each
available one as txs of the Stripe link's external account for its currency: the gross
amount as one tx (named by the charge id for a charge, else by the balance transaction id)
and the fee as a separate negative tx ``<id>:fee``, so fees can be booked to an expense
account. We reconcile a charge's gross tx into the
configured entry type with parameters read from the charge (``user_id`` from
``metadata.user_id``). A charge whose metadata lacks a parameter stays unreconciled and is
reported, never guessed.

Two paths deliver the same balance transactions: webhooks (stored in an inbox, then
processed) and backfills that list a ``created`` window. Both end in ``sync_txs`` (a tx
synced twice is a no-op) and ``reconcile_in`` (the tx row is locked and the ik is the tx id),
so a charge is posted once whichever path comes first, or both at once.

The API key and webhook signing secret come from the settings (``STRIPE_API_KEY`` /
``STRIPE_WEBHOOK_SECRET``) or from the database (``configure_stripe``); they are held in
``Secret`` so that no repr, log line or error message shows them.
"""
