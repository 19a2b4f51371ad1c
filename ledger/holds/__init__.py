"""Holds: two-phase posting (issue 15). An entry of any type posted as a hold reserves what
it would take: its lines stay pending (``hold_lines``) and move no posted balance, while its
decreases count at once against the available balance the engine checks conditions on.
A hold is then committed (its lines, or a part of them, post as the entry's lines), voided,
or expired by the beat once past its ``expiresAt``."""
