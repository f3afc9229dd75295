"""The HTTP API (``bertctr api``): scoring, live CTR, A/B decisions, metrics, the live page.

Sits above :mod:`streams` (it reads what the workers write: counters and
model snapshots) and below the CLI: nothing in it writes model state.
"""

from api.app import create_app

__all__ = ["create_app"]
