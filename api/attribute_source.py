"""``GET /explain``'s image attributes, read from the image describer's cache.

The learner's embedder describes every image the stream shows as it embeds
it (:mod:`encoder_server.client.embedder`), and caches each description
under the image encoder's cache tag (``P desc:image_encoder:<tag>:<image>``).
This adapter of :class:`~online_ctr.insights.AttributeSource` reads them
back (:func:`~encoder_server.client.describer.read_descriptions`, one MGET)
for the encoder version the served snapshot's **champion** learned with,
and turns each into the drivers analysis's :class:`~online_ctr.insights.ImageAttributes`:

* each numeric attribute (``brightness``, ``sharpness``, ``text``, ...) as it is;
* each named attribute as one level of a tag family: ``colour=red``
  (every image has exactly one colour, so the family is effect coded);
* each tag the describer is at least :data:`MIN_TAG_SCORE` sure of as a
  binary indicator ``tag:<label>`` (present vs absent).

A promoted served version (``image_encoder.v3``) has no describer of its
own; its images are read under the base ``image_encoder``'s tag as well,
since tags and attributes come from the backbone and the pixels, which a
new head does not change. It needs the API's encoder client only for the
cache tag (version and head fingerprint); the tag last seen is kept, so a
Triton outage does not blind ``/explain``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence

from redis.exceptions import RedisError

from api.state import ApiState
from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.describer import read_descriptions
from encoder_server.client.errors import EncoderUnavailable
from encoder_server.description import Description
from online_ctr.insights import ImageAttributes

__all__ = ["MIN_TAG_SCORE", "NO_ENCODER", "DescribedAttributes", "image_attributes"]

log = logging.getLogger(__name__)

#: a describer tag below this score is left out: ImageNet's top 5 on a product
#: photo trail off into near-zero guesses, which would only add noisy columns
MIN_TAG_SCORE = 0.1
#: why /explain has no attributes when the API has no encoder to name the cache tag
NO_ENCODER = (
    "no image encoder configured (BERTCTR_TRITON_URL unset): image attributes are read from "
    "the image describer's cache under the served encoder's version"
)
#: why /explain has no attributes before the server has opened its state
NOT_STARTED = "the API is starting"


def image_attributes(
    image_id: str, description: Description, min_tag_score: float = MIN_TAG_SCORE
) -> ImageAttributes:
    """One description as the drivers analysis reads it (numbers, ``name=value``, ``tag:label``).

    >>> from encoder_server.description import Tag
    >>> d = Description((Tag("sneaker", 0.6), Tag("sandal", 0.02)), {"colour": "red", "text": 0.1})
    >>> a = image_attributes("img-1", d)
    >>> dict(a.numeric), sorted(a.tags)
    ({'text': 0.1}, ['colour=red', 'tag:sneaker'])
    """
    numeric: dict[str, float] = {}
    tags: set[str] = set()
    for name, value in description.attributes.items():
        if isinstance(value, str):
            tags.add(f"{name}={value}")
        elif math.isfinite(value):
            numeric[name] = float(value)
    for tag in description.tags:
        if tag.score >= min_tag_score:
            # "=" would make the label a family level (see online_ctr.insights.design)
            tags.add(f"tag:{tag.label.replace('=', ' ')}")
    return ImageAttributes(image_id, numeric, frozenset(tags))


class DescribedAttributes:
    """:class:`~online_ctr.insights.AttributeSource` over the describer's Redis cache.

    ``state()`` is the running server's :class:`~api.state.ApiState` (None
    before it started): the app builds this source before it connects.
    """

    def __init__(
        self, state: Callable[[], ApiState | None], min_tag_score: float = MIN_TAG_SCORE
    ) -> None:
        self.state = state
        self.min_tag_score = min_tag_score
        #: the last cache tag seen per served model, for when Triton cannot be asked
        self._tags: dict[str, str] = {}

    @property
    def unavailable_reason(self) -> str | None:
        state = self.state()
        if state is None:
            return NOT_STARTED
        if state.embedder is None:
            return NO_ENCODER
        return None

    async def attributes(self, image_ids: Sequence[str]) -> Mapping[str, ImageAttributes]:
        state = self.state()
        if state is None or state.embedder is None or not image_ids:
            return {}
        model = state.watcher.current.image_model if state.watcher.current else IMAGE_ENCODER
        models = [model] if model == IMAGE_ENCODER else [model, IMAGE_ENCODER]
        found: dict[str, Description] = {}
        for served in models:
            rest = [i for i in image_ids if i not in found]
            tag = await self._tag(state, served) if rest else None
            if tag is None:
                continue
            try:
                found.update(
                    await read_descriptions(
                        state.redis, rest, tag, prefix=state.settings.redis_prefix
                    )
                )
            except (RedisError, OSError) as exc:
                log.warning("description cache unreadable: %s", exc)
                return {}
        return {i: image_attributes(i, d, self.min_tag_score) for i, d in found.items()}

    async def _tag(self, state: ApiState, model: str) -> str | None:
        assert state.embedder is not None
        try:
            self._tags[model] = await state.embedder.cache_tag(model)
        except EncoderUnavailable as exc:
            log.warning("cache tag of %s unknown (%s); using the last seen", model, exc)
        return self._tags.get(model)
