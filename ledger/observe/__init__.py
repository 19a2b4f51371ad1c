"""What an operator watches: the state of the queues read from the database, and the
structured log lines of every process."""
