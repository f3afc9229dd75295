"""Promoting a new encoder version: the duel, its always-valid test, the weight map."""
