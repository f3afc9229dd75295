"""``GET /images/{image_id}``: the local image store's files, and nothing else of the server."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import openapi_document
from api.routes import images
from api.state import api_state
from encoder_server.client.image_store import LocalImageStore

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
WEBP = b"RIFF\x40\x00\x00\x00WEBPVP8 " + b"\x00" * 64


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    root = tmp_path / "secret-server-dir" / "images"
    root.mkdir(parents=True)
    (root / "shoe-red.png").write_bytes(PNG)
    (root / "shoe blue.jpg").write_bytes(JPEG)
    (root / "mug.webp").write_bytes(WEBP)
    (root / "page.png").write_bytes(b"<html><script>alert(1)</script></html>")
    (root / "huge.png").write_bytes(PNG + b"\x00" * 2000)
    (tmp_path / "secret-server-dir" / "outside.png").write_bytes(PNG)
    return root


def client_on(store: LocalImageStore | None) -> TestClient:
    app = FastAPI()
    app.include_router(images.router)
    app.dependency_overrides[api_state] = lambda: SimpleNamespace(images=store)
    return TestClient(app)


def test_a_stored_image_is_served_with_its_media_type(image_dir: Path) -> None:
    client = client_on(LocalImageStore(image_dir, max_bytes=1000))
    for image_id, body, kind in (
        ("shoe-red", PNG, "image/png"),
        ("shoe blue", JPEG, "image/jpeg"),
        ("mug", WEBP, "image/webp"),
    ):
        got = client.get(f"/images/{image_id}")
        assert got.status_code == 200, got.text
        assert got.content == body and got.headers["content-type"] == kind
        assert got.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "image_id",
    [
        "nope",
        "page",
        "huge",
        "..",
        "...",
        "outside",
        "..%2Foutside",
        "%2E%2E",
        "a%5C..%5Coutside",
        "x" * 256,  # a valid id, too long for a file name: not a 503
    ],
)
def test_unknown_unsafe_or_non_images_are_404_without_a_path(
    image_dir: Path, image_id: str
) -> None:
    client = client_on(LocalImageStore(image_dir, max_bytes=1000))
    got = client.get(f"/images/{image_id}")
    assert got.status_code == 404, (image_id, got.text)
    assert "secret-server-dir" not in got.text and str(image_dir) not in got.text


@pytest.mark.parametrize("image_id", ["%20%20", "a%00b", "a%0Ab", "x" * 257])
def test_ids_outside_the_event_contract_are_422(image_dir: Path, image_id: str) -> None:
    got = client_on(LocalImageStore(image_dir, max_bytes=1000)).get(f"/images/{image_id}")
    assert got.status_code == 422, (image_id, got.text)
    assert "secret-server-dir" not in got.text


def test_without_a_local_image_store_every_image_is_404() -> None:
    got = client_on(None).get("/images/shoe-red")
    assert got.status_code == 404
    assert "no local image store" in got.json()["detail"]


def test_the_route_is_documented_with_the_identifier_rule() -> None:
    op = openapi_document()["paths"]["/images/{image_id}"]["get"]
    (param,) = op["parameters"]
    assert param["schema"]["maxLength"] == 256 and param["schema"]["pattern"]
    assert set(op["responses"]) >= {"200", "404", "422"}
    assert "image/png" in op["responses"]["200"]["content"]
