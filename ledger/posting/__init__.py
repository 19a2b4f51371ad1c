"""The posting engine and what it needs: typed entry requests, compiling them into lines,
idempotency keys, balance locks and conditions, and the rollup of eventual balances.
"""
