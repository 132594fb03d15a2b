"""The HTTP edge: who is calling, from which origin, how large a body, how errors and metrics are answered."""
