"""The event-time join: the pure book of pending impressions, its agent and changelog."""
