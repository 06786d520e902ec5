"""The FastAPI application: routes, error answers and the process's runtime."""

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.definitions import preview_fire_times
from shared.errors import Conflict, InvalidFields, NotFound, Unavailable
from shared.runtime import Runtime, build_runtime
from shared.schedules import ScheduleError
from shared.settings import get_settings
from shared.times import utcnow
from shared.web.jobs import router as jobs_router
from shared.web.metrics import router as metrics_router
from shared.web.schemas import Health, PreviewRequest, PreviewResponse
from shared.web.ui import router as ui_router

log = logging.getLogger("pingpay.api")


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The API over ``runtime``, or over one it builds from the settings.

    A runtime handed in belongs to the caller, who starts and closes it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if runtime is not None:
            yield
            return
        app.state.runtime = build_runtime(get_settings())
        app.state.runtime.start()
        yield
        app.state.runtime.close()

    app = FastAPI(
        title="PingPay Scheduler",
        version="0.1.0",
        description="Fires HTTP requests on time: cron, one time or every N units.",
        lifespan=lifespan,
    )
    # Set here, not in the lifespan: a function platform's adapter runs no
    # lifespan, and the runtime it hands in serves every invocation.
    if runtime is not None:
        app.state.runtime = runtime
    app.include_router(jobs_router)
    app.include_router(metrics_router)
    app.include_router(ui_router)
    app.add_api_route(
        "/health", health, methods=["GET"], response_model=Health, tags=["service"]
    )
    app.add_api_route(
        "/schedules/preview",
        preview,
        methods=["POST"],
        response_model=PreviewResponse,
        tags=["schedules"],
    )
    _add_error_answers(app)
    return app


def health(request: Request) -> JSONResponse:
    """The service and the state of its database and queue; 503 if one is down."""
    runtime: Runtime = request.app.state.runtime
    states = {
        "database": _probe(runtime.store.ping),
        "queue": _probe(runtime.queue.ping),
    }
    healthy = all(state == "ok" for state in states.values())
    body = Health(
        status="ok" if healthy else "unavailable",
        mode="embedded" if runtime.settings.embedded else "servers",
        **states,
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


def preview(body: PreviewRequest) -> dict[str, Any]:
    """The next fire times of a schedule, without saving anything."""
    fields = body.model_dump(exclude={"after", "count"})
    return {"fire_times": preview_fire_times(fields, body.after, body.count, utcnow())}


def _probe(ping: Callable[[], None]) -> str:
    try:
        ping()
    except Exception as error:
        log.warning("health check failed: %s", error)
        return f"unavailable: {type(error).__name__}"
    return "ok"


def _add_error_answers(app: FastAPI) -> None:
    """Turn the service's errors into HTTP answers, in one place."""

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, error: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, error: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(InvalidFields)
    async def invalid(_request: Request, error: InvalidFields) -> JSONResponse:
        detail = [
            {
                "type": "value_error",
                "loc": ["body", field],
                "msg": message,
                "input": _jsonable(value),
            }
            for field, message, value in error.problems
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ScheduleError)
    async def bad_schedule(request: Request, error: ScheduleError) -> JSONResponse:
        return await invalid(
            request, InvalidFields([(error.field, error.message, None)])
        )

    @app.exception_handler(sqlalchemy.exc.OperationalError)
    @app.exception_handler(sqlalchemy.exc.InterfaceError)
    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def database_down(_request: Request, error: Exception) -> JSONResponse:
        return _unavailable(Unavailable("database", type(error).__name__))

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def queue_down(_request: Request, error: Exception) -> JSONResponse:
        return _unavailable(Unavailable("queue", type(error).__name__))


def _unavailable(error: Unavailable) -> JSONResponse:
    log.warning("answering 503: %s", error)
    return JSONResponse(
        {"detail": f"{error.dependency} unavailable, try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
