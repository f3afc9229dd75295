"""Kafka plumbing: the Faust app, group feeds, decoding, the emitter, dead letters, admin."""
