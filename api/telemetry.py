"""The API's Prometheus registry: its request latency, its Triton client, the fleet at scrape time.

One :class:`ApiMetrics` per running app (made with its state, never
prometheus_client's global registry), so several apps in one test process
keep their own numbers. :class:`RequestTimer` times every request by route
template (``/ctr``, never ``/ctr?item=...`` or a raw path: a label per URL
would grow without bound); a path no route matches is ``unmatched``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.fleet import FleetView, families
from schemas.metric_names import API_REQUEST_SECONDS
from streams.telemetry import Metric, TritonMetrics, process_metrics

__all__ = ["UNMATCHED", "ApiMetrics", "RequestTimer", "route_template"]

#: the ``route`` label of a request no route matched (a 404)
UNMATCHED = "unmatched"


class ApiMetrics(Collector):
    """The registry ``GET /metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            API_REQUEST_SECONDS.name,
            API_REQUEST_SECONDS.help,
            API_REQUEST_SECONDS.labels,
            registry=self.registry,
        )
        #: the observer given to the API's embedding client
        self.triton = TritonMetrics(self.registry)
        process_metrics(self.registry, "api")
        self._view: FleetView | None = None
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        if self._view is not None:
            yield from families(self._view)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)

    def render(self, view: FleetView, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) of a scrape with ``view`` as the fleet's state.

        Synchronous from setting the view to rendering it, so scrapes served
        concurrently on one event loop never see each other's view.
        """
        encode, content_type = choose_encoder(accept or "")
        self._view = view
        try:
            return encode(self.registry), content_type
        finally:
            self._view = None


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request (``unmatched`` for none).

    FastAPI's own routes (``/openapi.json``, ``/docs``) are plain Starlette
    routes that set no ``route`` in the scope; one that matched with no path
    parameters is named by its path, which is then its template.
    """
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    if scope.get("endpoint") is not None and scope.get("path_params") == {}:
        return str(scope["path"])
    return UNMATCHED


def _metrics(scope: Scope) -> ApiMetrics | None:
    app: Any = scope.get("app")
    state = getattr(getattr(app, "state", None), "bertctr", None)
    metrics = getattr(state, "metrics", None)
    return metrics if isinstance(metrics, ApiMetrics) else None


class RequestTimer:
    """ASGI middleware: ``bertctr_api_request_seconds{method, route, status}`` per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_see)
        finally:
            metrics = _metrics(scope)
            if metrics is not None:
                elapsed = time.perf_counter() - started
                metrics.observe_request(scope["method"], route_template(scope), status, elapsed)
