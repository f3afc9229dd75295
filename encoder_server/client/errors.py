"""Why an embedding could not be made, and what the caller must do about it.

The stream must never learn an example without its embedding, and must never
drop an example because a dependency blinked. So every failure is either
*transient* (wait and retry the whole call; Kafka keeps the examples) or
*permanent for one item* (dead-letter that example, carry on with the rest).
The tree says which, so callers catch a class, never parse a message::

    EmbeddingError                 base of everything raised here
    ├── EncoderUnavailable         transient, whole call: Triton down or not
    │                              ready, deadline exceeded, circuit breaker
    │                              open, retries exhausted. Wait and retry.
    ├── StoreUnavailable           transient, whole call: image host 5xx,
    │                              429, timeout, connection refused, local
    │                              disk error. Wait and retry.
    └── ImageUnavailable           permanent, one item: dead-letter it.
        ├── ImageNotFound          no such image (no local file, HTTP 404/410)
        └── ImageRejected          refused before or while fetching: id with a
                                   path separator or "..", URL not allow-listed,
                                   bad scheme, redirect, over the size limit

A bad item that reached the encoder (an undecodable PNG, say) is not an
exception at all: it comes back as that item's ``Embedded.error``.

The embedding cache raises none of these: a Redis failure surfaces as
:class:`redis.exceptions.RedisError`, which callers treat as a cache miss
(see :mod:`encoder_server.client.cache`).
"""

from __future__ import annotations

__all__ = [
    "EmbeddingError",
    "EncoderUnavailable",
    "ImageNotFound",
    "ImageRejected",
    "ImageUnavailable",
    "StoreUnavailable",
]


class EmbeddingError(Exception):
    """Base of every error of the embedding service's client side."""


class EncoderUnavailable(EmbeddingError):
    """The encoder service cannot answer now; retry the whole call later."""


class StoreUnavailable(EmbeddingError):
    """The image store cannot answer now; retry the whole call later."""


class ImageUnavailable(EmbeddingError):
    """This one image can never be fetched as asked; dead-letter its example."""


class ImageNotFound(ImageUnavailable):
    """The image does not exist (no local file; HTTP 404 or 410)."""


class ImageRejected(ImageUnavailable):
    """The request for the image was refused: unsafe id or URL, redirect, too big."""
