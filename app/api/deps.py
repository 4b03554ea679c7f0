"""Typed dependencies: each route signature says what it needs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from app.access import Access, Scope, authenticate
from app.answering import Answerer
from app.api.schemas import ErrorResponse
from app.config import Settings
from app.service import Service
from app.store import Store


# async: resolved on the event loop, so no dependency waits for a thread of the pool that /ask calls fill.
async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_settings(service: Annotated[Service, Depends(get_service)]) -> Settings:
    return service.settings


async def get_store(service: Annotated[Service, Depends(get_service)]) -> Store:
    return service.store


async def get_answerer(service: Annotated[Service, Depends(get_service)]) -> Answerer:
    return service.require_answerer()


async def get_access(
    service: Annotated[Service, Depends(get_service)], authorization: Annotated[str | None, Header()] = None
) -> Access:
    return authenticate(service.store, authorization, service.settings.server.keys_required)


def requires(scope: Scope) -> Callable[[Access], Coroutine[Any, Any, Access]]:
    """A dependency: the request's access, which must include `scope`."""

    async def checked(access: Annotated[Access, Depends(get_access)]) -> Access:
        access.require(scope)
        return access

    return checked


# The errors every route behind a key may answer (for the OpenAPI schema).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}}

ServiceDep = Annotated[Service, Depends(get_service)]
ReadAccess = Annotated[Access, Depends(requires("read"))]
WriteAccess = Annotated[Access, Depends(requires("write"))]
# For routes that only need the check: `dependencies=[NEEDS_READ]`.
NEEDS_READ = Depends(requires("read"))
NEEDS_ADMIN = Depends(requires("admin"))
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
