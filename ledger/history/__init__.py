"""Ledger history: balances at a point in time and over periods, reversals, entry and line
queries with keyset pagination, tag and group updates, group balances.

Every function here runs inside the caller's transaction (``conn``), save the few that
take the ``Database``; ``ledger/service.py``
wraps each one for callers.

The performance bound of time travel
------------------------------------
Each line carries ``balance_after``: the own balance of its account in its currency right
after it, in ``(posted, id)`` order (``ledger/posting/engine.py`` keeps it exact under the balance
row lock; the rollup numbers the lines of eventually consistent accounts). So:

- the own balance of an account at a time is, per currency the account holds, one probe of
  the index ``(account_id, currency, posted, id)`` for the last line at or before that time:
  one index descent and one row, whatever the number of lines of the account or ledger;
- a child or total balance costs one such probe per (descendant account, currency);
- a change over a period costs two probes per (account, currency);
- for an eventually consistent account the probe also steps over its lines the rollup has
  not numbered yet (at most the rollup's backlog).

The price is paid on writes, and only when posting into the past: a backdated line adds its
amount to the running total of every later line of the same account and currency. Posting
at the end of an account's history costs nothing extra: the totals follow from the locked
balance (ledger/posting/rollup.py, ``_running_totals``).
"""
