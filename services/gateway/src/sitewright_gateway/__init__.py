"""The gateway: REST API, the read-model projector and the scheduler."""
