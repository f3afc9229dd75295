"""``openapi.json`` (committed, what clients generate from) is what the server serves.

Regenerate it with ``env -u BERTCTR_API_MAX_CANDIDATES bertctr api --openapi openapi.json``
after changing a route or a body; this test fails until then.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app, openapi_document
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_committed_document_is_the_served_one() -> None:
    committed = json.loads((ROOT / "openapi.json").read_text())
    served = TestClient(create_app(Settings.from_env({}))).get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == committed == openapi_document()


def test_every_public_path_is_documented() -> None:
    paths = set(openapi_document()["paths"])
    for path in (
        "/ctr",
        "/score",
        "/ab/{item_id}",
        "/ab/{item_id}/allocate",
        "/healthz",
        "/readyz",
    ):
        assert path in paths
    assert "/fleet" in paths and "/series/ctr" in paths


def test_the_served_limit_is_the_configured_one() -> None:
    app = create_app(Settings.from_env({"BERTCTR_API_MAX_CANDIDATES": "50"}))
    doc = TestClient(app).get("/openapi.json").json()
    assert (
        doc["components"]["schemas"]["ScoreRequest"]["properties"]["candidates"]["maxItems"] == 50
    )
