"""Where image bytes come from: a local directory, or allow-listed HTTP hosts.

Image ids and URLs arrive in events from producers, so they are untrusted
input. A local id could name ``../../etc/passwd``; a URL could point the
worker at an internal service (SSRF) or at a 10 GiB file. So:

* :class:`LocalImageStore` accepts plain file names only (no path separator,
  no ``..``) and files up to ``max_bytes``;
* :class:`HttpImageStore` fetches only http(s) URLs under an allow-listed
  prefix, compared as parsed scheme, host, port and whole path segments (a
  string prefix would let ``https://cdn.example.com.evil.org/`` pass for
  ``https://cdn.example.com``), follows no redirects (a redirect could leave
  the allow list), and stops reading past ``max_bytes``.

Failures follow :mod:`encoder_server.client.errors`: a missing or refused image is
permanent for that item (:class:`ImageNotFound`, :class:`ImageRejected`); an
image host that is down or slow is transient (:class:`StoreUnavailable`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import SplitResult, unquote, urlsplit

import aiohttp

from encoder_server.client.errors import ImageNotFound, ImageRejected, StoreUnavailable

__all__ = [
    "IMAGE_SUFFIXES",
    "CompositeImageStore",
    "HttpImageStore",
    "ImageStore",
    "LocalImageStore",
    "UrlAllowList",
]

log = logging.getLogger(__name__)

#: file suffixes the local store looks for, in this order
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 64 * 1024


class ImageStore(Protocol):
    """Fetches the encoded bytes of one image."""

    async def fetch(self, image_id: str, image_url: str | None) -> bytes:
        """The image's bytes; raises ``ImageUnavailable`` or ``StoreUnavailable``."""
        ...


class LocalImageStore:
    """Images as ``<image_id>.png|.jpg|.jpeg|.webp`` files in one directory."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    async def fetch(self, image_id: str, image_url: str | None = None) -> bytes:
        """The file's bytes; ``image_url`` is ignored (see :class:`CompositeImageStore`)."""
        _check_image_id(image_id)
        return await asyncio.to_thread(self._read, image_id)

    def _read(self, image_id: str) -> bytes:
        for suffix in IMAGE_SUFFIXES:
            path = self.directory / f"{image_id}{suffix}"
            try:
                with path.open("rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size > self.max_bytes:
                        raise ImageRejected(
                            f"image {image_id!r} is {size} bytes, over {self.max_bytes}"
                        )
                    data = f.read(self.max_bytes + 1)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG:
                    # a valid id (up to 256 characters) may be longer than a file name can
                    # be: no file has it, for good (a disk error would stall the stream)
                    continue
                # the path stays in this process's log; callers (and API clients) get no path
                log.warning("cannot read %s: %s", path, exc)
                raise StoreUnavailable(
                    f"cannot read image {image_id!r}: {exc.strerror or type(exc).__name__}"
                ) from exc
            if len(data) > self.max_bytes:  # grew since fstat
                raise ImageRejected(f"image {image_id!r} is over {self.max_bytes} bytes")
            return data
        raise ImageNotFound(f"no image file for {image_id!r} in the local image store")


def _check_image_id(image_id: str) -> None:
    if not image_id or image_id in {".", ".."}:
        raise ImageRejected(f"invalid image id {image_id!r}")
    bad = {"/", "\\", "\x00", os.sep, os.altsep or "/"}
    if ".." in image_id or any(c in image_id for c in bad):
        raise ImageRejected(f"image id {image_id!r} is not a plain file name")


@dataclass(frozen=True)
class _Prefix:
    scheme: str
    host: str
    port: int
    path: str  # "" or "/a/b": matched as whole segments


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        raise ImageRejected(f"invalid port in {parts.geturl()!r}") from exc
    return port if port is not None else _DEFAULT_PORTS[parts.scheme]


def _segments_ok(path: str) -> bool:
    decoded = unquote(path)
    if "\\" in decoded or "\x00" in decoded:
        return False
    return not any(seg in {".", ".."} for seg in decoded.split("/"))


class UrlAllowList:
    """Which image URLs may be fetched: http(s) under one of ``prefixes``.

    A prefix is a URL; a candidate matches when scheme, host and port are
    equal and its path is the prefix path or lies below it, segment by
    segment. URLs with credentials, ``.``/``..`` segments or backslashes are
    refused outright, and so are whitespace, control characters and
    backslashes anywhere in the URL.

    >>> allow = UrlAllowList(["https://cdn.example.com/img/"])
    >>> allow.allows("https://cdn.example.com/img/a.png")
    True
    >>> allow.allows("https://cdn.example.com.evil.org/img/a.png")
    False
    >>> allow.allows("https://cdn.example.com/imgx/a.png")
    False
    """

    def __init__(self, prefixes: Sequence[str]) -> None:
        self.prefixes = tuple(self._parse_prefix(p) for p in prefixes)

    @staticmethod
    def _parse_prefix(prefix: str) -> _Prefix:
        parts = urlsplit(prefix.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"image URL prefix must be an http(s) URL with a host: {prefix!r}")
        if parts.username is not None or parts.query or parts.fragment:
            raise ValueError(f"image URL prefix must not have credentials or a query: {prefix!r}")
        if not _segments_ok(parts.path):
            raise ValueError(f"image URL prefix must not have . or .. segments: {prefix!r}")
        try:
            port = _port(parts)
        except ImageRejected as exc:
            raise ValueError(str(exc)) from exc
        return _Prefix(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def check(self, url: str) -> None:
        """Return if ``url`` may be fetched, else raise :class:`ImageRejected` saying why."""
        if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
            # urlsplit and the HTTP client could disagree on such a URL
            raise ImageRejected(f"image URL has whitespace, control characters or '\\': {url!r}")
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ImageRejected(f"image URL scheme {parts.scheme!r} is not http or https")
        if not parts.hostname:
            raise ImageRejected(f"image URL has no host: {url!r}")
        if parts.username is not None or parts.password is not None:
            raise ImageRejected("image URL must not carry credentials")
        if not _segments_ok(parts.path):
            raise ImageRejected(f"image URL path has . or .. segments: {url!r}")
        port = _port(parts)
        path = parts.path or "/"
        for p in self.prefixes:
            if (parts.scheme, parts.hostname, port) != (p.scheme, p.host, p.port):
                continue
            if not p.path or path == p.path or path.startswith(p.path + "/"):
                return
        raise ImageRejected(f"image URL is not under an allow-listed prefix: {url!r}")

    def allows(self, url: str) -> bool:
        """Whether ``url`` may be fetched."""
        try:
            self.check(url)
        except ImageRejected:
            return False
        return True


class HttpImageStore:
    """Images fetched over HTTP(S) from allow-listed URL prefixes, with aiohttp.

    The session is made on first use (inside the running loop) and closed by
    :meth:`close`. ``fetch`` needs an ``image_url``; the id is only for messages.
    """

    def __init__(
        self,
        allowed_prefixes: Sequence[str],
        max_bytes: int,
        timeout_s: float,
    ) -> None:
        if max_bytes <= 0 or timeout_s <= 0:
            raise ValueError("max_bytes and timeout_s must be positive")
        self.allow_list = UrlAllowList(allowed_prefixes)
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, image_id: str, image_url: str | None) -> bytes:
        if not image_url:
            raise ImageRejected(f"image {image_id!r} has no URL to fetch")
        self.allow_list.check(image_url)
        try:
            async with self._client().get(
                image_url, allow_redirects=False, raise_for_status=False
            ) as resp:
                self._check_status(image_id, resp.status)
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    raise ImageRejected(
                        f"image {image_id!r} is {resp.content_length} bytes, over {self.max_bytes}"
                    )
                body = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ImageRejected(f"image {image_id!r} is over {self.max_bytes} bytes")
                return bytes(body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            if isinstance(exc, aiohttp.InvalidURL):
                raise ImageRejected(f"invalid image URL {image_url!r}: {exc}") from exc
            raise StoreUnavailable(f"fetching image {image_id!r} failed: {exc!r}") from exc

    @staticmethod
    def _check_status(image_id: str, status: int) -> None:
        if 200 <= status < 300:
            return
        if status in {404, 410}:
            raise ImageNotFound(f"image {image_id!r}: HTTP {status}")
        if status >= 500 or status in {408, 429}:
            raise StoreUnavailable(f"image {image_id!r}: HTTP {status}")
        if 300 <= status < 400:
            raise ImageRejected(f"image {image_id!r}: HTTP {status} redirect not followed")
        raise ImageRejected(f"image {image_id!r}: HTTP {status}")


class CompositeImageStore:
    """An event with an ``image_url`` is fetched over HTTP; one without, from disk.

    A store that is not configured refuses its kind of image permanently
    (the example is dead-lettered, which is visible) rather than stalling the
    stream on something that will never work.
    """

    def __init__(self, local: ImageStore | None = None, http: HttpImageStore | None = None) -> None:
        self.local = local
        self.http = http

    async def fetch(self, image_id: str, image_url: str | None) -> bytes:
        if image_url:
            if self.http is None:
                raise ImageRejected(f"image {image_id!r}: no image URL prefixes are allowed")
            return await self.http.fetch(image_id, image_url)
        if self.local is None:
            raise ImageNotFound(f"image {image_id!r}: no image URL and no local image directory")
        return await self.local.fetch(image_id, None)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
