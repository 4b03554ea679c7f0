"""Typed dependencies: each route signature says what it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.answering import Answerer
from app.config import Settings
from app.service import Service
from app.store import Store


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_settings(service: Annotated[Service, Depends(get_service)]) -> Settings:
    return service.settings


def get_store(service: Annotated[Service, Depends(get_service)]) -> Store:
    return service.store


def get_answerer(service: Annotated[Service, Depends(get_service)]) -> Answerer:
    return service.require_answerer()


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
AnswererDep = Annotated[Answerer, Depends(get_answerer)]
