"""Image and title encoders: how they are served on Triton, trained on clicks, and called.

Rooms, each importing only the shared modules at this level (``base``: the
``Encoder`` protocol and served names; ``images``; ``projection``: the heads;
``chunked``):

- ``client``: what the stream and the API use to get embeddings: the Triton
  ``triton_client`` port with its ``batcher`` and ``breaker``, the Redis
  ``cache``, the ``image_store`` and the ``embedder`` that ties them
  together. ``errors`` draws its exception tree.
- ``serving``: the encoders (``image_encoder``, ``text_encoder``, ``clip``),
  their Triton binding (``serve``) and server process (``process``), model
  ``repository``, ``loader`` and ``export`` for a production ``tritonserver``.
- ``training``: the fine-tuning trainer (``finetune``: the job's entry;
  ``config``: its parameters; ``head_trainer``: the loop; ``fitted``: what it
  fits; ``whitening``, ``gate``, ``result``, ``report``).
"""
