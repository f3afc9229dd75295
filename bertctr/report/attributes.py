"""The drivers heatmap's image attributes outside the demo: the describer's cache.

``bertctr report`` has no simulator to ask, so it reads what the learner's
embedder cached (:class:`api.attribute_source.DescribedAttributes`) for the
champion's image-encoder version, through the same API state ``bertctr api``
opens from the settings (the newest snapshot names the champion, Triton
names the cache tag). Without ``BERTCTR_TRITON_URL`` nothing can name the
tag, and the section says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from api.attribute_source import NO_ENCODER, DescribedAttributes
from api.state import close_state, open_state
from online_ctr.insights import AttributeSource, NoAttributes
from schemas.settings import Settings

__all__ = ["described_attributes"]


@asynccontextmanager
async def described_attributes(settings: Settings) -> AsyncIterator[AttributeSource]:
    """The describer's cache as an attribute source, open for the ``async with`` block."""
    if not settings.triton_url:
        yield NoAttributes(NO_ENCODER)
        return
    state = await open_state(settings)
    try:
        yield DescribedAttributes(lambda: state)
    finally:
        await close_state(state)
