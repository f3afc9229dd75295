"""A report from :class:`~schemas.settings.Settings`: the call the CLI and the demo share."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path

from bertctr.report.attributes import described_attributes
from bertctr.report.gather import TagReader, gather_report
from bertctr.report.ope import read_ope_file
from bertctr.report.since import Since, parse_since
from bertctr.report.write import write_report
from encoder_server.base import IMAGE_ENCODER
from encoder_server.client.describer import read_descriptions
from encoder_server.client.errors import EmbeddingError
from encoder_server.client.image_store import LocalImageStore
from online_ctr.insights import AttributeSource
from schemas.keys import KeySpace
from schemas.settings import Settings
from wiring.connections import async_redis
from wiring.embedding import triton_client_from_settings

__all__ = ["make_report"]

log = logging.getLogger(__name__)


def make_report(
    settings: Settings,
    out_dir: Path,
    *,
    since: str | None = None,
    title: str = "bertctr report",
    oracle: list[tuple[int, float]] | None = None,
    image_dir: str | None = None,
    attributes: AttributeSource | None = None,
    tags_version: str | None = None,
    ope_file: str | Path | None = None,
) -> Path:
    """Gather from ``settings``' Redis (prefix, image store) and write ``out_dir/index.html``.

    Without ``tags_version`` the tag is asked of the Triton at
    ``BERTCTR_TRITON_URL`` (the served image encoder's), if one is set.
    ``image_dir`` overrides ``BERTCTR_IMAGE_DIR`` for thumbnails; ``oracle``
    is the simulator's NE curve and ``attributes`` its images' attributes
    (the demo's; without them, the describer's cache for the champion's
    encoder version, as ``GET /explain`` reads it); ``tags_version``: the
    image encoder's cache tag whose cached descriptions hold the images'
    tags (None: tags not computed);
    ``ope_file``: ``bertctr ope --json`` output for the OPE table.
    """
    window = parse_since(since) if since else Since()
    ope = read_ope_file(ope_file) if ope_file is not None else None
    directory = image_dir or settings.image_dir
    store = LocalImageStore(directory, settings.image_max_bytes) if directory else None

    async def gather() -> Path:
        client = async_redis(settings)
        tag_reader: TagReader | None = None
        version = tags_version or await _served_tag(settings)
        if version is not None:

            async def tag_reader(image_ids: list[str]) -> dict[str, list[str]]:
                found = await read_descriptions(
                    client, image_ids, version, prefix=settings.redis_prefix
                )
                return {i: [t.label for t in d.tags] for i, d in found.items()}

        source: AbstractAsyncContextManager[AttributeSource] = (
            nullcontext(attributes) if attributes is not None else described_attributes(settings)
        )
        try:
            async with source as found:
                data = await gather_report(
                    client,
                    KeySpace(settings.redis_prefix),
                    since=window,
                    image_store=store,
                    tag_reader=tag_reader,
                    attributes=found,
                    oracle=oracle,
                    ope=ope,
                    title=title,
                )
        finally:
            await client.aclose()
        return write_report(data, out_dir)

    return asyncio.run(gather())


async def _served_tag(settings: Settings) -> str | None:
    """The served image encoder's cache tag (None: no Triton configured, or it cannot say)."""
    if not settings.triton_url:
        return None
    client = triton_client_from_settings(settings)
    try:
        return await client.cache_tag(IMAGE_ENCODER)
    except EmbeddingError as exc:
        log.info("no tags: the image encoder's cache tag is unknown (%s)", exc)
        return None
    finally:
        await client.close()
