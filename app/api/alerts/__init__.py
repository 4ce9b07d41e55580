"""alerts resource."""
