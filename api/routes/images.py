"""``GET /images/{image_id}``: one image of the local image store, for the live page's thumbnails.

The page shows the images behind its charts (a segment's top and bottom
images, the variants of the A/B item) without loading anything from the
internet, so the API serves them from the store the workers embed from:
``BERTCTR_IMAGE_DIR`` (``<image_id>.png|.jpg|.jpeg|.webp``,
:class:`~encoder_server.client.image_store.LocalImageStore`). An image only
reachable through an ``image_url`` is not served: the page would have to
fetch it from its host, and the API is not a proxy.

The id is untrusted input: it must match the event contract's identifier
(:data:`schemas.events.IDENTIFIER_PATTERN`, at most 256 characters, else
422), and the store refuses anything but a plain file name. An unknown id,
a store that is not configured, a file over ``BERTCTR_IMAGE_MAX_BYTES`` or
bytes that are not a PNG, JPEG or WebP image are all a 404 whose detail
names the id only, never a path on the server.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import Response

from api.state import ApiState, api_state
from encoder_server.client.errors import ImageUnavailable, StoreUnavailable
from schemas.events import IDENTIFIER_PATTERN

__all__ = ["MEDIA_TYPES", "media_type", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["images"])

#: magic bytes -> media type: the formats the store holds
MEDIA_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
#: the store's files change rarely, and a thumbnail a few minutes stale is harmless
_HEADERS = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}


def media_type(data: bytes) -> str | None:
    """The image's media type from its first bytes; None if it is not PNG, JPEG or WebP.

    >>> media_type(b"\\x89PNG\\r\\n\\x1a\\n...")
    'image/png'
    >>> media_type(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 ")
    'image/webp'
    >>> media_type(b"<svg onload=...>") is None
    True
    """
    for magic, kind in MEDIA_TYPES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class ImageNotServed(HTTPException):
    """A 404 that names the image id, and nothing of the server."""

    def __init__(self, image_id: str, why: str) -> None:
        super().__init__(status_code=404, detail=f"image {image_id!r}: {why}")


@router.get(
    "/images/{image_id}",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
            "description": "The image's bytes.",
        },
        404: {"description": "No such image in the local image store, or none is configured."},
        503: {"description": "The image store could not be read (try again)."},
    },
)
async def image(
    state: Annotated[ApiState, Depends(api_state)],
    image_id: Annotated[str, Path(min_length=1, max_length=256, pattern=IDENTIFIER_PATTERN)],
) -> Response:
    """One image of the local image store (``BERTCTR_IMAGE_DIR``), by its ``image_id``.

    The live page's thumbnails. An id never stored, or any id when no
    local image directory is configured, is a 404.
    """
    if state.images is None:
        raise ImageNotServed(image_id, "no local image store is configured")
    try:
        data = await state.images.fetch(image_id)
    except ImageUnavailable as exc:
        log.debug("image %r not served: %s", image_id, exc)
        raise ImageNotServed(image_id, "not in the local image store") from exc
    except StoreUnavailable as exc:
        raise HTTPException(
            status_code=503, detail=f"image {image_id!r}: the image store cannot be read"
        ) from exc
    kind = media_type(data)
    if kind is None:
        raise ImageNotServed(image_id, "not a PNG, JPEG or WebP image")
    return Response(content=data, media_type=kind, headers=_HEADERS)
