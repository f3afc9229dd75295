"""Image and title encoders on Triton, and how the stream gets their embeddings.

Server side: the encoders (``image_encoder``, ``text_encoder``, ``clip``,
behind the ``base.Encoder`` protocol, with ``projection`` heads), their
binding to Triton (``serve``, ``launcher``) and a model-repository
``export``. Client side, used by ``streams``: the ``client`` port and its
Triton adapter, the Redis ``cache``, the ``image_store`` and the
``embedder`` that ties them together. ``errors`` draws the exception tree.
"""
