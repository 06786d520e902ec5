"""The FastAPI application: routes, error answers and the process's runtime."""

import logging
import math
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared.definitions import preview_fire_times
from shared.errors import Conflict, InvalidFields, NotFound, Unavailable
from shared.runtime import Runtime, build_runtime
from shared.schedules import ScheduleError
from shared.settings import Settings, get_settings
from shared.times import utcnow
from shared.web.auth import (
    OPEN_PATHS,
    ApiKeyMiddleware,
    KeyRing,
    LoopbackOnly,
    require_keys_or_opt_out,
)
from shared.web.jobs import router as jobs_router
from shared.web.metrics import router as metrics_router
from shared.web.policy import BodyLimit
from shared.web.schemas import Health, PreviewRequest, PreviewResponse
from shared.web.ui import router as ui_router

log = logging.getLogger("pingpay.api")

_ERROR_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def create_app(runtime: Runtime | None = None, local_only: bool = False) -> FastAPI:
    """The API over ``runtime``, or over one it builds from the settings.

    A runtime handed in belongs to the caller, who starts and closes it.
    Without API keys the app is refused (AuthNotConfigured) unless the
    settings allow no auth or ``local_only`` says only this machine reaches it.
    """
    settings = runtime.settings if runtime else get_settings()
    require_keys_or_opt_out(settings, local_only)

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
        "/health",
        health,
        methods=["GET"],
        response_model=Health,
        responses={503: {"model": Health, "description": "A dependency is down"}},
        tags=["service"],
    )
    app.add_api_route(
        "/schedules/preview",
        preview,
        methods=["POST"],
        response_model=PreviewResponse,
        tags=["schedules"],
    )
    _add_error_answers(app)
    _guard(app, settings, local_only)
    return app


def _guard(app: FastAPI, settings: Settings, local_only: bool) -> None:
    """Put the key check and the body limit around every path, and document them."""
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    keys = KeyRing.from_settings(settings)
    if local_only and not keys:
        app.add_middleware(LoopbackOnly)
    if keys:
        # Added last, so it runs first: a request without a key is not read.
        app.add_middleware(ApiKeyMiddleware, keys=keys)
    _document_guard(app, keys_required=bool(keys))


def _document_guard(app: FastAPI, keys_required: bool) -> None:
    """Add the answers the middleware and error handlers give to the OpenAPI doc."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path, operations in schema["paths"].items():
                secured = keys_required and path not in OPEN_PATHS
                for operation in operations.values():
                    _add_answers(operation, secured)
            if keys_required:
                schemes = schema.setdefault("components", {})
                schemes.setdefault("securitySchemes", {})["apiKey"] = {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the keys in API_KEYS.",
                }
        return app.openapi_schema

    app.openapi = openapi


def _add_answers(operation: dict[str, Any], secured: bool) -> None:
    answers = {"503": "The database or the queue is down"}
    if "requestBody" in operation:
        answers |= {
            "400": "The body could not be read",
            "413": "The body is larger than MAX_REQUEST_BYTES",
        }
    if secured:
        operation["security"] = [{"apiKey": []}]
        answers |= {"401": "No API key", "403": "A wrong API key"}

    responses = operation.setdefault("responses", {})
    for status, description in answers.items():
        responses.setdefault(
            status,
            {
                "description": description,
                "content": {"application/json": {"schema": _ERROR_BODY}},
            },
        )


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

    @app.exception_handler(RequestValidationError)
    async def malformed(
        _request: Request, error: RequestValidationError
    ) -> JSONResponse:
        detail = [_validation_problem(problem) for problem in error.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if not _too_deep(error):
            return await http_exception_handler(request, error)
        message = "JSON nested too deeply to read"
        detail = [{"type": "json_invalid", "loc": ["body"], "msg": message}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(InvalidFields)
    async def invalid(_request: Request, error: InvalidFields) -> JSONResponse:
        detail = [
            {
                "type": "value_error",
                "loc": [error.location, field],
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


def _too_deep(error: HTTPException) -> bool:
    """True for the 400 FastAPI answers to JSON nested beyond the parser's reach.

    FastAPI answers malformed JSON with a 422, but JSON the parser gives up
    on for its recursion limit with a 400 whose cause is the RecursionError.
    To a client that is malformed JSON too, and the README promises a 422
    for payloads nested too deeply.
    """
    return error.status_code == 400 and isinstance(error.__cause__, RecursionError)


def _unavailable(error: Unavailable) -> JSONResponse:
    log.warning("answering 503: %s", error)
    return JSONResponse(
        {"detail": f"{error.dependency} unavailable, try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _validation_problem(problem: dict[str, Any]) -> dict[str, Any]:
    """One of FastAPI's validation errors, echoing its input only if plain.

    The input can be the whole body: nested too deep to answer, holding NaN
    (no JSON), or holding header values that are credentials. The location
    and the message say what is wrong without it.
    """
    answer = {name: problem[name] for name in ("type", "loc", "msg")}
    if _is_plain(problem.get("input")):
        answer["input"] = problem.get("input")
    if "ctx" in problem:
        answer["ctx"] = {k: _jsonable(v) for k, v in problem["ctx"].items()}
    return jsonable_encoder(answer)


def _is_plain(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return value.isprintable() and _encodes(value)
    return value is None or isinstance(value, int | bool)


def _encodes(text: str) -> bool:
    """False for text holding half a surrogate pair, which JSON cannot carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _jsonable(value: object) -> object:
    if _is_plain(value):
        return value
    return str(value).encode("utf-8", "replace").decode()
