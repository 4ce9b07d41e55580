"""notification_channels resource."""
