"""Image stores: local files on tmp_path, HTTP against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from encoder_server.client.errors import (
    ImageNotFound,
    ImageRejected,
    ImageUnavailable,
    StoreUnavailable,
)
from encoder_server.client.image_store import (
    CompositeImageStore,
    HttpImageStore,
    LocalImageStore,
    UrlAllowList,
)
from schemas.settings import Settings
from wiring.embedding import image_store_from_settings

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

# --- local store ---------------------------------------------------------------


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    (d / "a.png").write_bytes(PNG)
    (d / "b.jpeg").write_bytes(b"jpeg-bytes")
    (d / "big.webp").write_bytes(b"x" * 2000)
    (tmp_path / "secret.png").write_bytes(b"secret")
    return d


async def test_local_finds_each_suffix(image_dir: Path) -> None:
    store = LocalImageStore(image_dir, max_bytes=1500)
    assert await store.fetch("a", None) == PNG
    assert await store.fetch("b", "https://ignored.example/") == b"jpeg-bytes"


async def test_local_missing_is_not_found(image_dir: Path) -> None:
    store = LocalImageStore(image_dir, max_bytes=1500)
    with pytest.raises(ImageNotFound):
        await store.fetch("nope", None)


async def test_local_errors_never_show_the_servers_path(image_dir: Path) -> None:
    """An API client is told which image is missing or unreadable, not where images live."""
    store = LocalImageStore(image_dir, max_bytes=1500)
    with pytest.raises(ImageNotFound) as missing:
        await store.fetch("nope", None)
    (image_dir / "locked.png").write_bytes(PNG)
    (image_dir / "locked.png").chmod(0)
    unreadable = await _error_of(store.fetch("locked", None))
    for message in (str(missing.value), unreadable):
        assert "'nope'" in message or "'locked'" in message
        assert str(image_dir) not in message and str(image_dir.parent) not in message


async def _error_of(call: Any) -> str:
    """The message ``call`` fails with (root may read a file without read permission)."""
    try:
        await call
    except (StoreUnavailable, ImageNotFound) as exc:
        return str(exc)
    return "read it (running as root): 'locked'"


async def test_local_oversize_is_rejected(image_dir: Path) -> None:
    store = LocalImageStore(image_dir, max_bytes=1500)
    with pytest.raises(ImageRejected, match="over 1500"):
        await store.fetch("big", None)


@pytest.mark.parametrize(
    "image_id", ["../secret", "..", ".", "", "sub/a", "sub\\a", "/etc/passwd", "a\x00", "x..y"]
)
async def test_local_path_traversal_is_rejected(image_dir: Path, image_id: str) -> None:
    store = LocalImageStore(image_dir, max_bytes=1500)
    with pytest.raises(ImageRejected):
        await store.fetch(image_id, None)


@pytest.mark.parametrize("image_id", ["x" * 256, "\u00e9" * 200])
async def test_local_id_too_long_for_a_file_name_is_not_found(
    image_dir: Path, image_id: str
) -> None:
    """A valid event id (256 characters, or 400 bytes of UTF-8) that no file can be named
    after is a missing image for good, not a disk error to wait out (the stream would stall)."""
    store = LocalImageStore(image_dir, max_bytes=1500)
    with pytest.raises(ImageNotFound) as missing:
        await store.fetch(image_id, None)
    assert str(image_dir) not in str(missing.value)


async def test_local_directory_named_like_an_image_is_not_an_image(image_dir: Path) -> None:
    (image_dir / "d.png").mkdir()
    store = LocalImageStore(image_dir, max_bytes=1500)
    with pytest.raises(ImageNotFound):
        await store.fetch("d", None)


# --- allow list ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://cdn.example.com/img/a.png", True),
        ("https://CDN.example.com:443/img/a.png", True),
        ("https://cdn.example.com/img", True),
        ("https://cdn.example.com/img/sub/a.png?w=10", True),
        ("https://cdn.example.com.evil.org/img/a.png", False),
        ("https://evil.org/cdn.example.com/img/a.png", False),
        ("https://cdn.example.com@evil.org/img/a.png", False),
        ("https://user:pw@cdn.example.com/img/a.png", False),
        ("https://cdn.example.com:8443/img/a.png", False),
        ("http://cdn.example.com/img/a.png", False),
        ("https://cdn.example.com/imgx/a.png", False),
        ("https://cdn.example.com/other/a.png", False),
        ("https://cdn.example.com/img/../private/a.png", False),
        ("https://cdn.example.com/img/%2e%2e/private/a.png", False),
        ("https://cdn.example.com/img\\..\\a.png", False),
        ("https://cdn.example.com/img/a.png\n", False),
        ("ftp://cdn.example.com/img/a.png", False),
        ("file:///img/a.png", False),
        ("//cdn.example.com/img/a.png", False),
        ("not a url", False),
        ("http://static.example.net/x.jpg", True),
    ],
)
def test_allow_list(url: str, allowed: bool) -> None:
    allow = UrlAllowList(["https://cdn.example.com/img/", "http://static.example.net"])
    assert allow.allows(url) is allowed


@pytest.mark.parametrize(
    "prefix", ["ftp://x.example/", "https://", "https://u@x.example/", "https://x.example/../"]
)
def test_bad_prefixes_fail_at_configuration(prefix: str) -> None:
    with pytest.raises(ValueError):
        UrlAllowList([prefix])


# --- HTTP store against a real server -------------------------------------------


class ImageServer:
    """A local aiohttp server with one route per behaviour."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.released = asyncio.Event()
        app = web.Application()
        app.router.add_get("/images/ok.png", self.ok)
        app.router.add_get("/images/big.png", self.big)
        app.router.add_get("/images/streamed.png", self.streamed)
        app.router.add_get("/images/slow.png", self.slow)
        app.router.add_get("/images/broken.png", self.broken)
        app.router.add_get("/images/moved.png", self.moved)
        app.router.add_get("/private/secret.png", self.ok)
        self.runner = web.AppRunner(app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def ok(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.Response(body=PNG, content_type="image/png")

    async def big(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.Response(body=b"x" * 5000)

    async def streamed(self, request: web.Request) -> web.StreamResponse:
        """No Content-Length: the store must count what it reads."""
        self.hits.append(request.path)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            for _ in range(100):
                await resp.write(b"y" * 1000)
        except ConnectionError:
            pass  # the client hung up once it had enough: that is the point
        return resp

    async def slow(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), 5)
        return web.Response(body=PNG)

    async def broken(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        return web.Response(status=503)

    async def moved(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        raise web.HTTPFound(self.url("/private/secret.png"))


@pytest.fixture
async def server() -> AsyncIterator[ImageServer]:
    s = ImageServer()
    await s.start()
    yield s
    s.released.set()
    await s.runner.cleanup()


@pytest.fixture
async def http_store(server: ImageServer) -> AsyncIterator[HttpImageStore]:
    store = HttpImageStore([server.url("/images/")], max_bytes=4096, timeout_s=0.5)
    yield store
    await store.close()


async def test_http_ok(server: ImageServer, http_store: HttpImageStore) -> None:
    assert await http_store.fetch("ok", server.url("/images/ok.png")) == PNG
    assert server.hits == ["/images/ok.png"]


async def test_http_404_is_not_found(server: ImageServer, http_store: HttpImageStore) -> None:
    with pytest.raises(ImageNotFound):
        await http_store.fetch("x", server.url("/images/missing.png"))


async def test_http_oversize_by_content_length(
    server: ImageServer, http_store: HttpImageStore
) -> None:
    with pytest.raises(ImageRejected, match="5000 bytes"):
        await http_store.fetch("big", server.url("/images/big.png"))


async def test_http_oversize_while_streaming(
    server: ImageServer, http_store: HttpImageStore
) -> None:
    with pytest.raises(ImageRejected, match="over 4096"):
        await http_store.fetch("s", server.url("/images/streamed.png"))


async def test_http_not_allow_listed_is_never_requested(
    server: ImageServer, http_store: HttpImageStore
) -> None:
    with pytest.raises(ImageRejected, match="allow-listed"):
        await http_store.fetch("s", server.url("/private/secret.png"))
    with pytest.raises(ImageRejected):
        await http_store.fetch("s", server.url("/images/../private/secret.png"))
    assert server.hits == []


async def test_http_lookalike_host_is_rejected(
    server: ImageServer, http_store: HttpImageStore
) -> None:
    for url in (
        f"http://127.0.0.1.evil.org:{server.port}/images/ok.png",
        f"http://127.0.0.1:{server.port}@evil.org/images/ok.png",
        f"http://localhost:{server.port}/images/ok.png",
        f"https://127.0.0.1:{server.port}/images/ok.png",
    ):
        with pytest.raises(ImageRejected):
            await http_store.fetch("ok", url)
    assert server.hits == []


async def test_http_redirect_is_not_followed(
    server: ImageServer, http_store: HttpImageStore
) -> None:
    with pytest.raises(ImageRejected, match="redirect"):
        await http_store.fetch("m", server.url("/images/moved.png"))
    assert server.hits == ["/images/moved.png"]


async def test_http_timeout_is_transient(server: ImageServer, http_store: HttpImageStore) -> None:
    with pytest.raises(StoreUnavailable):
        await http_store.fetch("slow", server.url("/images/slow.png"))


async def test_http_5xx_is_transient(server: ImageServer, http_store: HttpImageStore) -> None:
    with pytest.raises(StoreUnavailable, match="503"):
        await http_store.fetch("b", server.url("/images/broken.png"))


async def test_http_connection_refused_is_transient(server: ImageServer) -> None:
    url = server.url("/images/ok.png")
    await server.runner.cleanup()
    store = HttpImageStore([server.url("/images/")], max_bytes=4096, timeout_s=0.5)
    try:
        with pytest.raises(StoreUnavailable):
            await store.fetch("ok", url)
    finally:
        await store.close()


# --- composite and settings -------------------------------------------------------


async def test_composite_routes_by_url(
    server: ImageServer, http_store: HttpImageStore, image_dir: Path
) -> None:
    store = CompositeImageStore(LocalImageStore(image_dir, 4096), http_store)
    assert await store.fetch("b", None) == b"jpeg-bytes"
    assert await store.fetch("b", server.url("/images/ok.png")) == PNG
    assert server.hits == ["/images/ok.png"]


async def test_composite_without_stores_fails_permanently() -> None:
    store = CompositeImageStore()
    with pytest.raises(ImageUnavailable):
        await store.fetch("a", None)
    with pytest.raises(ImageRejected):
        await store.fetch("a", "https://cdn.example.com/a.png")


async def test_from_settings(server: ImageServer, image_dir: Path) -> None:
    settings = Settings(
        image_dir=str(image_dir),
        image_url_prefixes=f" {server.url('/images/')} , https://cdn.example.com/ ",
        image_max_bytes=1500,
        image_fetch_timeout_s=1.0,
    )
    store = image_store_from_settings(settings)
    try:
        assert await store.fetch("a", None) == PNG
        with pytest.raises(ImageRejected):  # PNG is 1032 bytes; big is 5000
            await store.fetch("big", server.url("/images/big.png"))
        assert await store.fetch("ok", server.url("/images/ok.png")) == PNG
    finally:
        await store.close()
