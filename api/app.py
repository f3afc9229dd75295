"""The ASGI application: routes mounted, state opened at start and closed at stop.

FastAPI because the ecosystem's clients read OpenAPI: the document it
generates is committed as ``openapi.json`` and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.attribute_source import DescribedAttributes
from api.problems import bounded_errors
from api.routes import (
    ab,
    ctr,
    dashboard,
    explain,
    health,
    images,
    items,
    metrics,
    quality,
    score,
    series,
)
from api.state import close_state, open_state
from api.telemetry import RequestTimer
from online_ctr.store import ModelStore
from schemas.settings import Settings

__all__ = ["TITLE", "app_from_env", "create_app", "openapi_document"]

TITLE = "bertctr"
VERSION = "1"
DESCRIPTION = (
    "Live CTR per item, visual variant and audience segment; candidate ranking with the "
    "champion online model; Bayesian A/B decisions per variant and segment; Prometheus metrics."
)


def create_app(settings: Settings, store: ModelStore | None = None) -> FastAPI:
    """The API on ``settings``' Redis and model store (``store`` overrides the latter)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bertctr = await open_state(settings, store)
        try:
            yield
        finally:
            await close_state(app.state.bertctr)

    # /docs is served from vendored files (api/routes/dashboard.py); ReDoc would need a CDN
    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    routes = (ctr, score, ab, explain, items, health, series, images, dashboard, quality, metrics)
    for module in routes:
        app.include_router(module.router)
    # GET /explain's image attributes: the describer's cache, for the champion's encoder version
    app.state.attribute_source = DescribedAttributes(lambda: getattr(app.state, "bertctr", None))
    app.add_middleware(RequestTimer)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _document_limits(app, settings)
    return app


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, with each error's echo of the input bounded (never the whole request)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        status_code=422, content={"detail": jsonable_encoder(bounded_errors(exc.errors()))}
    )


def app_from_env() -> FastAPI:
    """The API on the settings in the environment: the factory each uvicorn worker calls."""
    return create_app(Settings())


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Make the served document state this server's own limits (clients generate from it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            request = doc["components"]["schemas"]["ScoreRequest"]
            request["properties"]["candidates"]["maxItems"] = settings.api_max_candidates
        return app.openapi_schema or doc

    app.openapi = openapi  # type: ignore[method-assign]


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document with default settings, as ``openapi.json`` holds it."""
    return create_app(Settings.from_env({})).openapi()
