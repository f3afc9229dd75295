"""``GET /``: the built-in live page, ``GET /static/...``: its files, ``GET /docs``: Swagger UI.

Plain HTML, CSS and JavaScript in ``api/static/`` (no build step), with
uPlot vendored in ``api/static/vendor/`` (see the README there): the page
loads nothing from the internet. It polls the JSON endpoints
(``/series/ctr``, ``/series/model``, ``/series/images``, ``/fleet``,
``/ab/{item_id}``), shows the images behind its charts from
``/images/{image_id}``, and shows "no data yet" for whatever is not there.
Swagger UI is vendored beside uPlot, so ``/docs`` works offline too.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["STATIC_DIR", "router"]

router = APIRouter(tags=["page"])

#: the page's files, shipped as package data
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: the page changes with the package; the vendored library only with its version
_NO_CACHE = {"Cache-Control": "no-cache"}


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def page() -> FileResponse:
    """The live page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_NO_CACHE)


@router.get("/static/{path:path}", response_class=FileResponse, include_in_schema=False)
async def static(path: str) -> FileResponse:
    """One of the page's files; nothing outside ``api/static/``."""
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(target, headers=_NO_CACHE)


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI on ``/openapi.json``, from the vendored files (no CDN)."""
    vendor = "/static/vendor/swagger-ui"
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="bertctr API",
        swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
        swagger_css_url=f"{vendor}/swagger-ui.css",
        swagger_favicon_url=f"{vendor}/favicon-32x32.png",
    )
