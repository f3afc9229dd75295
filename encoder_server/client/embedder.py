"""Embeddings for labelled examples: cache first, then the image store and Triton.

The learner asks for a batch of impressions at once. Distinct images and
titles are looked up in the Redis cache under the *served* encoder version
and its head's fingerprint (a version number reused for a re-fitted head
must miss), so each image is embedded once per version however often it is shown; only
misses are fetched from the image store and sent to Triton, in one call per
encoder (the client micro-batches further). Fresh embeddings go back to the
cache.

Two kinds of failure, kept apart on purpose:

* transient (Triton down or slow, circuit open, image host 5xx): the whole
  call raises :class:`~encoder_server.client.errors.EncoderUnavailable` or
  :class:`~encoder_server.client.errors.StoreUnavailable`, and the caller waits and
  retries. An example is never learned without its embedding;
* permanent, per example (image missing, refused, undecodable): that
  example's :attr:`ExampleEmbeddings.error` says why, the caller dead-letters
  it, and the rest of the batch goes on. Such failures are remembered for a
  while so a broken image shown a thousand times is fetched once.

A cache outage is not an encoder outage: Redis errors count as misses (the
embeddings are recomputed) and failed writes are only logged.

**Describing on the way** (``describe=True``, the learner's embedder): an
image embedded with the base ``image_encoder`` is sent to Triton's
``image_describer`` instead, whose one request returns the same embedding
and the image's description (tags, measured attributes), cached beside it
(:func:`~encoder_server.client.describer.write_descriptions`, under the same
cache tag). So every image the stream sees is described once per encoder
version at no extra request; an image whose embedding was cached before
(by the scoring API, a one-shot job, an older release) but has no
description yet joins the next describer request (remembered in process,
so it is looked up once). When the describer cannot answer (a Triton
without it, or one that is down) the batch is embedded by the encoder as
before, a warning is logged once, and the describer is tried again after
``describer_retry_s``; so its absence never changes what is learned.
A served version (``image_encoder.v3``) is not the describer's head: its
images are embedded by the encoder only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from redis.exceptions import RedisError

from encoder_server.base import IMAGE_ENCODER, TEXT_ENCODER
from encoder_server.client.cache import EmbeddingCache, title_key
from encoder_server.client.describer import DescribingClient, write_descriptions
from encoder_server.client.errors import EncoderUnavailable, ImageUnavailable
from encoder_server.client.image_store import ImageStore
from encoder_server.client.triton_client import EmbeddingClient
from encoder_server.description import Description
from schemas.keys import KeySpace
from schemas.tensors import IMAGE_DESCRIBER

__all__ = ["Embeddable", "Embedder", "ExampleEmbeddings"]

log = logging.getLogger(__name__)

Vector = tuple[float, ...]

#: images remembered as described, per process (~100 bytes each)
DESCRIBED_MEMO = 200_000


class Embeddable(Protocol):
    """What the embedder reads of an example: its image (id and where) and its title.

    :class:`~schemas.events.Impression` has these fields, and so has the
    scoring API's candidate (embedded as it is, without becoming an impression).
    """

    @property
    def image_id(self) -> str: ...

    @property
    def image_url(self) -> str | None: ...

    @property
    def title(self) -> str: ...


@dataclass(frozen=True)
class ExampleEmbeddings:
    """An example's image and title embeddings, or why it has none.

    ``title`` is ``None`` for an empty title (nothing to embed, not an error).
    When ``error`` is set the example must not be learned.
    """

    image: Vector | None
    title: Vector | None
    error: str = ""


class _FailureMemo:
    """Permanent per-image failures, remembered for ``ttl_s`` (bounded LRU)."""

    def __init__(self, ttl_s: float = 300.0, size: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key: str) -> str | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        expires, reason = hit
        if expires < time.monotonic():
            del self._items[key]
            return None
        return reason

    def put(self, key: str, reason: str) -> None:
        self._items[key] = (time.monotonic() + self.ttl_s, reason)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class Embedder:
    """Resolves impressions to embeddings through cache, image store and encoders.

    Parameters
    ----------
    client
        The encoder service (Triton in production).
    store
        Where image bytes come from.
    cache
        Redis cache of embeddings; ``None`` disables caching.
    version_ttl_s
        How long a served version number is trusted before it is asked
        again: a promoted encoder version is picked up within this time.
    memo_size
        Embeddings kept in this process (least recently used dropped), in
        front of the Redis cache: for a reader that asks for the same
        catalogue again and again (the scoring API), where a Redis round
        trip per request is most of the cost. An embedding never changes
        for a given version tag, so the memo cannot go stale. 0: none.
    describe
        Ask the image describer for the base image encoder's misses and
        cache the descriptions too (see the module docstring). Needs a
        ``cache`` and a client with ``describe``; otherwise ignored.
    describer_retry_s
        After the describer failed, how long images go to the encoder
        alone before it is tried again.
    """

    def __init__(
        self,
        client: EmbeddingClient,
        store: ImageStore,
        cache: EmbeddingCache | None = None,
        version_ttl_s: float = 30.0,
        memo_size: int = 0,
        *,
        describe: bool = False,
        describer_retry_s: float = 300.0,
    ) -> None:
        self.client = client
        self.store = store
        self.cache = cache
        self.version_ttl_s = version_ttl_s
        self.memo_size = memo_size
        self._memo: OrderedDict[tuple[str, str, str], Vector] = OrderedDict()
        self._versions: dict[str, tuple[float, int, str]] = {}
        self._failures = _FailureMemo()
        #: embeddings computed by the encoders (not found in the cache); with
        #: ``describe``, also ``image_describer``: descriptions computed
        self.computed = {IMAGE_ENCODER: 0, TEXT_ENCODER: 0}
        can = describe and cache is not None and callable(getattr(client, "describe", None))
        self._describer = cast(DescribingClient, client) if can else None
        self.describer_retry_s = describer_retry_s
        self._describer_off_until = 0.0
        self._describer_warned = False
        #: (cache tag, image id) known to have a cached description (bounded LRU)
        self._described: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def version(self, model: str) -> int:
        """The served version of ``model``, asked at most every ``version_ttl_s``."""
        return (await self._served(model))[0]

    async def cache_tag(self, model: str) -> str:
        """Where ``model``'s embeddings and descriptions are cached (asked as :meth:`version`)."""
        return (await self._served(model))[1]

    async def _served(self, model: str) -> tuple[int, str]:
        """(served version, cache tag) of ``model``; see ``EmbeddingClient.cache_tag``."""
        now = time.monotonic()
        known = self._versions.get(model)
        if known is not None and now - known[0] < self.version_ttl_s:
            return known[1], known[2]
        version = await self.client.version(model)
        tag = await self.client.cache_tag(model)
        self._versions[model] = (now, version, tag)
        return version, tag

    async def close(self) -> None:
        """Close the encoder client and the image store's connections."""
        await self.client.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

    def known_versions(self) -> dict[str, int]:
        """The encoder versions last seen served, by model name."""
        return {model: version for model, (_, version, _) in self._versions.items()}

    async def embed(
        self, impressions: Sequence[Embeddable], image_model: str = IMAGE_ENCODER
    ) -> list[ExampleEmbeddings]:
        """One result per impression, in order; raises only for transient failures.

        ``image_model`` is the served image model to ask: another encoder
        version is served under its own name (a challenger being judged).
        """
        images: dict[str, str | None] = {}
        for imp in impressions:
            images.setdefault(imp.image_id, imp.image_url)
        keys = [title_key(imp.title) if imp.title else "" for imp in impressions]
        titles = {k: imp.title for k, imp in zip(keys, impressions, strict=True) if k}
        image_vectors, image_errors = await self._images(images, image_model)
        title_vectors, title_errors = await self._titles(titles)
        out: list[ExampleEmbeddings] = []
        for imp, tkey in zip(impressions, keys, strict=True):
            error = image_errors.get(imp.image_id, "")
            if not error and tkey in title_errors:
                error = f"title: {title_errors[tkey]}"
            if error:
                out.append(ExampleEmbeddings(None, None, error))
            else:
                title = title_vectors[tkey] if tkey else None
                out.append(ExampleEmbeddings(image_vectors[imp.image_id], title))
        return out

    async def _images(
        self, images: dict[str, str | None], model: str
    ) -> tuple[dict[str, Vector], dict[str, str]]:
        errors: dict[str, str] = {}
        for image_id in images:
            reason = self._failures.get(image_id)
            if reason is not None:
                errors[image_id] = reason
        wanted = [i for i in images if i not in errors]
        _, tag = await self._served(model)
        vectors = await self._cached(model, tag, wanted)
        missing = [i for i in wanted if i not in vectors]
        describing = self._describing(model)
        backfill = await self._undescribed(tag, [i for i in vectors]) if describing else []
        if not missing and not backfill:
            return vectors, errors
        fetched = await asyncio.gather(
            *(self.store.fetch(i, images[i]) for i in [*missing, *backfill]),
            return_exceptions=True,
        )
        to_encode: dict[str, bytes] = {}
        for image_id, result in zip(missing, fetched[: len(missing)], strict=True):
            if isinstance(result, ImageUnavailable):
                errors[image_id] = f"image unavailable: {result}"
                self._failures.put(image_id, errors[image_id])
            elif isinstance(result, BaseException):
                raise result  # transient (store down): the caller waits and retries
            else:
                to_encode[image_id] = result
        # an image already embedded is only described when its bytes come easily
        rest = zip(backfill, fetched[len(missing) :], strict=True)
        to_describe = {i: r for i, r in rest if isinstance(r, bytes)}
        for image_id in backfill:
            if image_id not in to_describe:
                self._remember_described(tag, [image_id])  # not again in this process
        if describing and (to_encode or to_describe):
            fresh, bad = await self._describe(model, tag, to_encode, to_describe)
        else:
            fresh, bad = await self._encode(model, to_encode)
        for image_id, reason in bad.items():
            errors[image_id] = f"bad image: {reason}"
            self._failures.put(image_id, errors[image_id])
        vectors.update(fresh)
        await self._store(model, tag, fresh)
        return vectors, errors

    # -- the describer on the way ------------------------------------------
    def _describing(self, model: str) -> bool:
        """Whether ``model``'s misses go to the describer now (base image encoder only)."""
        return (
            self._describer is not None
            and model == IMAGE_ENCODER
            and time.monotonic() >= self._describer_off_until
        )

    async def _describe(
        self, model: str, tag: str, to_encode: dict[str, bytes], to_describe: dict[str, bytes]
    ) -> tuple[dict[str, Vector], dict[str, str]]:
        """Embeddings of ``to_encode`` and descriptions of both, in one describer call.

        Falls back to the encoder (``to_encode`` only) when the describer fails.
        """
        assert self._describer is not None
        keys = [*to_encode, *to_describe]
        items = [*to_encode.values(), *to_describe.values()]
        try:
            results = await self._describer.describe(items)
        except EncoderUnavailable as exc:
            self._describer_failed(exc)
            return await self._encode(model, to_encode)
        if self._describer_warned:
            log.info("image describer answers again: describing images as they are embedded")
            self._describer_warned = False
        vectors: dict[str, Vector] = {}
        errors: dict[str, str] = {}
        descriptions: dict[str, Description] = {}
        for key, got in zip(keys, results, strict=True):
            if key in to_encode:
                if got.error or got.vector is None:
                    errors[key] = got.error or "no embedding returned"
                    continue
                vectors[key] = got.vector
            if got.ok:
                try:
                    descriptions[key] = Description.from_json(got.description)
                except ValueError as exc:
                    log.warning("describer's answer for %s unreadable: %s", key, exc)
        self.computed[model] = self.computed.get(model, 0) + len(vectors)
        self.computed[IMAGE_DESCRIBER] = self.computed.get(IMAGE_DESCRIBER, 0) + len(descriptions)
        await self._store_descriptions(tag, descriptions)
        # a backfilled image the describer refused is not asked again in this process
        self._remember_described(tag, [k for k in to_describe if k not in descriptions])
        return vectors, errors

    def _describer_failed(self, exc: EncoderUnavailable) -> None:
        self._describer_off_until = time.monotonic() + self.describer_retry_s
        if self._describer_warned:
            log.debug("image describer still unavailable: %s", exc)
            return
        self._describer_warned = True
        log.warning(
            "image describer unavailable (%s): embedding with the encoder, without "
            "descriptions; trying it again in %.0fs",
            exc,
            self.describer_retry_s,
        )

    async def _undescribed(self, tag: str, image_ids: list[str]) -> list[str]:
        """Those of ``image_ids`` with no cached description (one MGET for the unknown ones)."""
        unknown = [i for i in image_ids if (tag, i) not in self._described]
        if not unknown or self.cache is None:
            return []
        keys = KeySpace(self.cache.prefix)
        try:
            raws = await self.cache.redis.mget(
                [keys.description(IMAGE_ENCODER, tag, i) for i in unknown]
            )
        except (RedisError, OSError) as exc:
            log.warning("description cache unavailable, not describing cached images: %s", exc)
            return []
        self._remember_described(tag, [i for i, r in zip(unknown, raws, strict=True) if r])
        return [i for i, r in zip(unknown, raws, strict=True) if not r]

    def _remember_described(self, tag: str, image_ids: list[str]) -> None:
        for image_id in image_ids:
            self._described[(tag, image_id)] = None
            self._described.move_to_end((tag, image_id))
        while len(self._described) > DESCRIBED_MEMO:
            self._described.popitem(last=False)

    async def _store_descriptions(self, tag: str, descriptions: dict[str, Description]) -> None:
        if self.cache is None or not descriptions:
            return
        ttl_ms = self.cache.ttl_ms
        try:
            await write_descriptions(
                self.cache.redis,
                descriptions,
                tag,
                prefix=self.cache.prefix,
                ttl_s=None if ttl_ms is None else ttl_ms / 1000,
            )
        except (RedisError, OSError) as exc:
            log.warning("could not cache %d descriptions: %s", len(descriptions), exc)
            return
        self._remember_described(tag, list(descriptions))

    async def _titles(self, titles: dict[str, str]) -> tuple[dict[str, Vector], dict[str, str]]:
        if not titles:
            return {}, {}
        _, tag = await self._served(TEXT_ENCODER)
        vectors = await self._cached(TEXT_ENCODER, tag, list(titles))
        missing = {k: t.encode("utf-8") for k, t in titles.items() if k not in vectors}
        fresh, errors = await self._encode(TEXT_ENCODER, missing)
        vectors.update(fresh)
        await self._store(TEXT_ENCODER, tag, fresh)
        return vectors, errors

    async def _encode(
        self, model: str, items: dict[str, bytes]
    ) -> tuple[dict[str, Vector], dict[str, str]]:
        if not items:
            return {}, {}
        keys = list(items)
        results = await self.client.embed(model, [items[k] for k in keys])
        vectors: dict[str, Vector] = {}
        errors: dict[str, str] = {}
        for key, result in zip(keys, results, strict=True):
            if result.error or result.vector is None:
                errors[key] = result.error or "no embedding returned"
            else:
                vectors[key] = result.vector
        self.computed[model] = self.computed.get(model, 0) + len(vectors)
        return vectors, errors

    def _recall(self, model: str, tag: str, keys: list[str]) -> dict[str, Vector]:
        found = {}
        for key in keys:
            vector = self._memo.get((model, tag, key))
            if vector is not None:
                self._memo.move_to_end((model, tag, key))
                found[key] = vector
        return found

    def _remember(self, model: str, tag: str, vectors: dict[str, Vector]) -> None:
        if not self.memo_size:
            return
        for key, vector in vectors.items():
            self._memo[(model, tag, key)] = vector
            self._memo.move_to_end((model, tag, key))
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    async def _cached(self, model: str, tag: str, keys: list[str]) -> dict[str, Vector]:
        found = self._recall(model, tag, keys) if self.memo_size else {}
        rest = [k for k in keys if k not in found]
        if self.cache is None or not rest:
            return found
        try:
            fetched = await self.cache.get_many(model, tag, rest)
        except (RedisError, OSError) as exc:
            log.warning("embedding cache unavailable, recomputing: %s", exc)
            return found
        self._remember(model, tag, fetched)
        return {**found, **fetched}

    async def _store(self, model: str, tag: str, vectors: dict[str, Vector]) -> None:
        self._remember(model, tag, vectors)
        if self.cache is None or not vectors:
            return
        try:
            await self.cache.put_many(model, tag, vectors)
        except (RedisError, OSError) as exc:
            log.warning("could not cache %d embeddings: %s", len(vectors), exc)
