"""The encoder-server launcher for integration tests (lives in :mod:`encoder_server.launcher`).

The demo needs the same launcher outside the tests, so it is library code;
this module keeps the tests' import path.
"""

from __future__ import annotations

from encoder_server.launcher import EncoderServer, start_encoder_server

__all__ = ["EncoderServer", "start_encoder_server"]
