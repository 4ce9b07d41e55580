"""Measurement history: the live hour in Redis, the pending queue, the flush to
PostgreSQL, minute aggregation, retention and the queries that read it all back."""
