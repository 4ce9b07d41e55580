"""silences resource."""
