"""Liveness, readiness and metrics: what operators and orchestrators poll."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import AUTH_ERRORS, NEEDS_ADMIN, ServiceDep
from app.api.schemas import Health, Readiness, WorkerOut
from app.service import Service
from app.store import WorkerHeartbeat

router = APIRouter(tags=["health"])


# The probes run on the event loop, never in the thread pool that blocked /ask calls may fill, and /ready
# loads a new index generation in a thread of its own: liveness never waits behind questions.
READINESS_THREADS = anyio.CapacityLimiter(1)
ALIVE_HEARTBEATS = 3  # a worker silent for longer than this many heartbeat intervals is not listed


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
    summary="200 once the models are loaded and the generator answers; 503 with the reason otherwise",
)
async def ready(service: ServiceDep) -> Readiness | JSONResponse:
    answerer = service.answerer
    snapshot = await anyio.to_thread.run_sync(service.index.current, limiter=READINESS_THREADS)
    error = service.load_error
    if answerer is not None:  # a generator server may be down although everything loaded
        error = await anyio.to_thread.run_sync(answerer.generator.unavailable, limiter=READINESS_THREADS)
    queued_jobs, workers = await anyio.to_thread.run_sync(_queue_and_workers, service, limiter=READINESS_THREADS)
    now = time.time()
    readiness = Readiness(
        ready=answerer is not None and error is None,
        index_generation=snapshot.generation if snapshot else None,
        indexed_chunks=snapshot.size if snapshot else 0,
        generator=answerer.generator.model_name if answerer else None,
        error=error,
        queued_jobs=queued_jobs,
        workers=[
            WorkerOut(id=w.id, started_at=w.started_at, seconds_since_heartbeat=round(now - w.heartbeat_at, 1))
            for w in workers
            if now - w.heartbeat_at <= ALIVE_HEARTBEATS * service.settings.ingest.heartbeat_seconds
        ],
        seconds_since_worker_heartbeat=round(now - workers[0].heartbeat_at, 1) if workers else None,
    )
    if not readiness.ready:
        return JSONResponse(status_code=503, content=readiness.model_dump())
    return readiness


@router.get(
    "/metrics",
    response_class=Response,
    responses={**AUTH_ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    dependencies=[NEEDS_ADMIN],
    summary="Prometheus metrics: requests, answer stages, tokens, queue depth, documents, index, workers",
)
async def metrics(service: ServiceDep) -> Response:
    body = await anyio.to_thread.run_sync(service.metrics.render, limiter=READINESS_THREADS)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _queue_and_workers(service: Service) -> tuple[int, list[WorkerHeartbeat]]:
    return service.store.jobs.pending(), service.store.workers()
