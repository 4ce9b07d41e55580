"""The heartbeat hot path: rules, node lookup cache, rate limit, the one Redis round trip
and the WSGI fast path. Nothing here queries PostgreSQL per heartbeat."""
