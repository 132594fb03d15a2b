"""The scheduler: one gateway at a time (a lease) publishes the outbox, fires due retries and re-drives stuck jobs."""
