"""Builds the FastAPI application: routes, error mapping, request ids, and the service's lifespan."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app.api.routes import adapters, ask, documents, health, openai, pages
from app.components import Models
from app.config import Settings
from app.errors import RagError, Unauthorized, describe_validation_errors
from app.logs import request_id
from app.service import Service


def create_app(settings: Settings, models: Models | None = None) -> FastAPI:
    """The app over `settings`; `models` already built (tests pass fakes) replace loading them in the background."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(settings, models)
        app.state.service = service
        service.start_loading()
        yield
        service.close()

    app = FastAPI(
        title="docqa",
        summary="Answers questions about your own documents, with sources.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(documents.router)
    app.include_router(ask.router)
    app.include_router(adapters.router)
    app.include_router(health.router)
    app.include_router(openai.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        # 401 says how to authenticate (RFC 9110).
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc)}, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One readable sentence first, FastAPI's field-by-field list after it.
        content = {"detail": describe_validation_errors(exc.errors()), "errors": jsonable_encoder(exc.errors())}
        return JSONResponse(status_code=422, content=content)

    @app.middleware("http")
    async def refuse_oversized_bodies(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Checked before the multipart parser spools the body to disk.
        limit = settings.server.max_request_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return JSONResponse(status_code=413, content={"detail": f"the request is larger than {limit} bytes"})
        return await call_next(request)

    @app.middleware("http")
    async def with_request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        token = request_id.set(request.headers.get("x-request-id") or uuid.uuid4().hex[:12])
        try:
            response = await call_next(request)
            response.headers["x-request-id"] = request_id.get()
            return response
        finally:
            request_id.reset(token)

    @app.middleware("http")
    async def measured(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # The route's template (/documents/{doc_id}), never the path itself: one series per route.
            route = getattr(request.scope.get("route"), "path", "unmatched")
            metrics = request.app.state.service.metrics
            metrics.observe_request(request.method, route, status, time.perf_counter() - started)

    return app
