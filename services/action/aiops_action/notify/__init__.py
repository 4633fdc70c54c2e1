"""Notifications: Slack (Block Kit) and signed webhooks, routed, grouped and rate-limited per channel."""
