"""The configured generator adapters, with the cards training wrote for them."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AUTH_ERRORS, NEEDS_READ, SettingsDep
from app.api.schemas import AdapterList, AdapterOut
from app.generation import describe_adapters

router = APIRouter(tags=["adapters"])


@router.get(
    "/adapters",
    response_model=AdapterList,
    responses=AUTH_ERRORS,
    dependencies=[NEEDS_READ],
    summary="The adapters a request can name, with their cards",
)
def list_adapters(settings: SettingsDep) -> AdapterList:
    return AdapterList(adapters=[AdapterOut.of(adapter) for adapter in describe_adapters(settings.generator)])
