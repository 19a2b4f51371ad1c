"""Balance monitors: conditions on a balance (posted, pending or available) that raise
balance.crossed, in the transaction of the change, each time they become true or false."""
