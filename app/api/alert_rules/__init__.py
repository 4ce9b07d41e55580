"""alert_rules resource."""
