"""``/docs`` loads nothing from the internet: every asset it names is served by the API."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.app import create_app
from schemas.settings import Settings


def test_docs_page_uses_only_vendored_assets() -> None:
    client = TestClient(create_app(Settings.from_env({})))
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"https?://", page.text)
    assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", page.text)
    assert {a.rsplit(".", 1)[-1] for a in assets} >= {"js", "css"}
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset
    assert "/openapi.json" in page.text
