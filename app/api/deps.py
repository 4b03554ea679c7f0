"""Typed dependencies: each route signature says what it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.answering import Answerer
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


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
