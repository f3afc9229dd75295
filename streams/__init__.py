"""The stream workers: batched consumer-group feeds hosted by a Faust app.

Rooms, bottom to top (``tests/unit/test_layers.py`` keeps imports pointing down):

- ``health``: per-partition progress and the health report (feeds seen as a protocol);
- ``kafka``: the plumbing: the Faust app, group feeds, decoding, the emitter,
  dead letters, topic admin;
- ``join``: the event-time join (pure ``book``), its agent and changelog ``state``;
- ``counters``: live and settled counters in Redis;
- ``learner``: the learner agent under a lease, its feed, the encoder-version
  promotion.

At this level: ``worker`` and ``agents`` assemble one worker process;
``readers`` reads back what the workers wrote (used by the API and the CLI,
which never load Faust); ``telemetry`` is the worker's Prometheus metrics.
"""
