"""Per-partition progress and the health report a worker publishes."""
