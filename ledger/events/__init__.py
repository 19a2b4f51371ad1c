"""Events: what happened, written in the same transaction as the change it reports (an
outbox), read as a gap-free ordered feed and delivered to webhook endpoints."""
