"""bertctr: a real-time CTR feedback loop for visual content.

This package holds the configuration and the command line; the event contract
lives in :mod:`schemas`, the stream in :mod:`streams`, pure learning code in
:mod:`online_ctr` and the encoders in :mod:`encoder_server`.
"""

__version__ = "0.1.0"
