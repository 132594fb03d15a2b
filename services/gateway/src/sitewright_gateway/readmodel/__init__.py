"""The read model: the pure rules that fold events into job documents, the writer that stores them,
the audit trail, the rebuild."""
