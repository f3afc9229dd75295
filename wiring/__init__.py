"""Building things from settings, in one home: connections, the embedder, model store, learner.

Every process (worker, API, fine-tuning job, CLI, benches) builds these here,
so a setting set once in the environment reaches all of them the same way.
Below ``streams`` and ``api``; imports only ``schemas``, ``online_ctr`` and
``encoder_server``.
"""
