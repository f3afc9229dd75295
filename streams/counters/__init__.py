"""Live and settled CTR counters in Redis, from labels and live counts."""
