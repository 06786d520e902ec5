"""Routes for jobs: the original six endpoints and the ones added since."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from shared.definitions import (
    SCHEDULE_FIELDS,
    due_soon,
    is_id,
    new_job,
    normalise_schedule,
    rescheduled,
)
from shared.errors import Conflict, NotFound
from shared.masking import refuse_moving_credentials, unmasked
from shared.planning import schedule_of
from shared.runtime import Runtime
from shared.tick import add_job, tick
from shared.times import utcnow
from shared.web.pages import decode_cursor, link_next, split_page
from shared.web.policy import check_job, page_size
from shared.web.schemas import (
    ErrorMessage,
    Job,
    JobChanges,
    JobFields,
    Run,
    RunDetail,
)
from shared.web.views import job_view, merged_definition, run_view

router = APIRouter(tags=["jobs"])
RunStatus = Literal[
    "pending",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "missed",
]
JobStatus = Literal["active", "inactive", "failed", "completed"]
PageLimit = Annotated[
    int | None, Query(ge=1, description="Items per page, at most MAX_PAGE_SIZE.")
]

#: The answer of a route that looks up a job or run by its id.
UNKNOWN_ID = {404: {"model": ErrorMessage, "description": "No such id"}}


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


@router.post("/jobs", status_code=status.HTTP_201_CREATED, response_model=Job)
def create_job(body: JobFields, request: Request) -> dict[str, Any]:
    """Create a job; it fires at its schedule's first fire time after now."""
    runtime, now = runtime_of(request), utcnow()
    fields = body.model_dump()
    check_job(fields, runtime.settings)
    fields = normalise_schedule(fields, now, future_required=True)
    return job_view(add_job(runtime, new_job(fields, now), now), now)


@router.get("/jobs", response_model=list[Job])
def list_jobs(
    request: Request,
    response: Response,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: PageLimit = None,
    cursor: str | None = None,
) -> list[dict[str, Any]]:
    """Jobs in creation order, 100 a page; ``Link`` points at the next page."""
    runtime = runtime_of(request)
    limit = page_size(limit, 100, runtime.settings)
    rows = runtime.store.jobs.page(status_, limit + 1, decode_cursor(cursor))
    page, next_cursor = split_page(rows, limit, job_position)
    link_next(request, response, next_cursor)
    now = utcnow()
    return [job_view(job, now) for job in page]


@router.get("/jobs/{job_id}", response_model=Job, responses=UNKNOWN_ID)
def get_job(job_id: str, request: Request) -> dict[str, Any]:
    return job_view(_existing(runtime_of(request), job_id), utcnow())


@router.put("/jobs/{job_id}", response_model=Job, responses=UNKNOWN_ID)
def replace_job(job_id: str, body: JobFields, request: Request) -> dict[str, Any]:
    """Replace a job's definition; runs not yet started are cancelled."""
    runtime, now = runtime_of(request), utcnow()
    current = _existing(runtime, job_id)
    fields = body.model_dump()
    refuse_moving_credentials(
        current["target"], current["headers"], fields["target"], fields["headers"]
    )
    fields["headers"] = unmasked(fields["headers"], current["headers"])
    check_job(fields, runtime.settings)
    fields = normalise_schedule(fields, now, future_required=True)
    values = rescheduled(fields, now) | {
        "status": _status_after_redefinition(current),
        "updated_at": now,
    }
    return _save(runtime, job_id, values, cancel_runs=True)


@router.patch("/jobs/{job_id}", response_model=Job, responses=UNKNOWN_ID)
def change_job(job_id: str, body: JobChanges, request: Request) -> dict[str, Any]:
    """Change some fields; a changed schedule starts again from now."""
    runtime, now = runtime_of(request), utcnow()
    current = _existing(runtime, job_id)
    changes = body.model_dump(exclude_unset=True)
    refuse_moving_credentials(
        current["target"],
        current["headers"],
        changes.get("target") or current["target"],
        changes.get("headers"),
    )
    if changes.get("headers") is not None:
        changes["headers"] = unmasked(changes["headers"], current["headers"])
    merged = _valid_job(merged_definition(current, changes))
    check_job(merged, runtime.settings)
    schedule_changed = any(name in changes for name in SCHEDULE_FIELDS)
    fields = normalise_schedule(merged, now, future_required=schedule_changed)
    values = {name: fields[name] for name in changes} | {"updated_at": now}
    if schedule_changed:
        values |= rescheduled(fields, now)
        values["status"] = _status_after_redefinition(current)
    return _save(runtime, job_id, values, cancel_runs=schedule_changed)


@router.delete(
    "/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT, responses=UNKNOWN_ID
)
def delete_job(job_id: str, request: Request) -> Response:
    """Delete a job and its history; nothing of it fires afterwards."""
    if not is_id(job_id) or not runtime_of(request).store.jobs.delete(job_id):
        raise NotFound("job", job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/jobs/{job_id}/pause",
    response_model=Job,
    responses=UNKNOWN_ID
    | {409: {"model": ErrorMessage, "description": "The job is completed"}},
)
def pause_job(job_id: str, request: Request) -> dict[str, Any]:
    """Stop firing: the job becomes inactive and its waiting runs are cancelled."""
    runtime, now = runtime_of(request), utcnow()
    current = _existing(runtime, job_id)
    if current["status"] == "completed":
        raise Conflict(f"job {job_id} is completed: it has nothing left to pause")
    values = {"status": "inactive", "updated_at": now}
    return _save(runtime, job_id, values, cancel_runs=True)


@router.post(
    "/jobs/{job_id}/resume",
    response_model=Job,
    responses=UNKNOWN_ID
    | {409: {"model": ErrorMessage, "description": "No fire time after now"}},
)
def resume_job(job_id: str, request: Request) -> dict[str, Any]:
    """Fire again from the next fire time after now; missed ones are not sent."""
    runtime, now = runtime_of(request), utcnow()
    current = _existing(runtime, job_id)
    next_run_at = schedule_of(current).next_after(now)
    if next_run_at is None:
        raise Conflict(
            f"job {job_id} has no fire time after now; give it a new schedule"
        )
    values = {
        "status": "active",
        "status_reason": None,
        "consecutive_failures": 0,
        "next_run_at": next_run_at,
        "updated_at": now,
    }
    return _save(runtime, job_id, values, cancel_runs=False)


@router.post(
    "/jobs/{job_id}/trigger",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Run,
    responses=UNKNOWN_ID,
)
def trigger_job(job_id: str, request: Request) -> dict[str, Any]:
    """Run the job now, outside its schedule (which stays as it is)."""
    runtime, now = runtime_of(request), utcnow()
    _existing(runtime, job_id)
    due = runtime.store.runs.add_manual(job_id, now)
    runtime.dispatcher.hold([due])
    return run_view(runtime.store.runs.get(due.id))


@router.get("/jobs/{job_id}/runs", response_model=list[Run], responses=UNKNOWN_ID)
def list_runs(
    job_id: str,
    request: Request,
    response: Response,
    limit: PageLimit = None,
    cursor: str | None = None,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
) -> list[dict[str, Any]]:
    """The job's runs, newest fire time first, 50 a page; ``Link`` for more."""
    runtime = runtime_of(request)
    limit = page_size(limit, 50, runtime.settings)
    _existing(runtime, job_id)
    rows = runtime.store.runs.page_for_job(
        job_id, limit + 1, decode_cursor(cursor), status_
    )
    page, next_cursor = split_page(rows, limit, run_position)
    link_next(request, response, next_cursor)
    return [run_view(run) for run in page]


@router.get(
    "/runs/{run_id}", response_model=RunDetail, tags=["runs"], responses=UNKNOWN_ID
)
def get_run(run_id: str, request: Request) -> dict[str, Any]:
    """One run with each of its attempts."""
    run = runtime_of(request).store.runs.get(run_id) if is_id(run_id) else None
    if run is None:
        raise NotFound("run", run_id)
    return run_view(run)


def job_position(job: dict[str, Any]) -> tuple[datetime, str]:
    """Where a job stands in the list: creation order."""
    return job["created_at"], job["id"]


def run_position(run: dict[str, Any]) -> tuple[datetime, str]:
    """Where a run stands in a job's history: newest fire time first."""
    return run["scheduled_for"], run["id"]


def _status_after_redefinition(job: dict[str, Any]) -> str:
    """A paused job stays paused; any other becomes active with its new schedule."""
    return "inactive" if job["status"] == "inactive" else "active"


def _valid_job(definition: dict[str, Any]) -> dict[str, Any]:
    """A changed job's whole definition, checked as a create body would be."""
    try:
        return JobFields.model_validate(definition).model_dump()
    except ValidationError as error:
        raise RequestValidationError(
            [problem | {"loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None


def _existing(runtime: Runtime, job_id: str) -> dict[str, Any]:
    if not is_id(job_id):
        raise NotFound("job", job_id)
    job = runtime.store.jobs.get(job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def _save(
    runtime: Runtime, job_id: str, values: dict[str, Any], cancel_runs: bool
) -> dict[str, Any]:
    job = runtime.store.jobs.update(job_id, values, cancel_runs)
    if job is None:
        raise NotFound("job", job_id)
    return job_view(_schedule_if_due(runtime, job), values["updated_at"])


def _schedule_if_due(runtime: Runtime, job: dict[str, Any]) -> dict[str, Any]:
    """Plan a job now if it fires before the next regular tick would see it."""
    now = utcnow()
    if not due_soon(job, now, runtime.settings.lookahead_seconds):
        return job
    tick(runtime, now, job_ids=[job["id"]], sweep=False)
    return runtime.store.jobs.get(job["id"]) or job
