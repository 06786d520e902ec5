"""The dashboard at ``/ui``: server-rendered pages over the same store.

Pages are Jinja2 templates with plain links and forms, no script and
nothing to build. Pause, resume, trigger and delete post a form to the same
route functions the REST API runs, then redirect back to the page (so a
reload never repeats an action).

The dashboard is mounted in the API app and answers behind whatever guards
the API. A browser cannot add an API key header to a plain link, so
``/ui/login`` takes the key once and keeps it in the ``pingpay_api_key``
cookie: sent to ``/ui`` pages only, unreadable by scripts (HttpOnly), and
never sent with a request another site starts (SameSite=Strict), which also
keeps other sites from posting the dashboard's forms with it.
"""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from shared.definitions import is_id
from shared.describe import describe_schedule, duration, local_time, relative
from shared.errors import Conflict, NotFound
from shared.planning import schedule_of
from shared.times import iso_z, utcnow
from shared.web import jobs
from shared.web.auth import sent_by_another_site
from shared.web.chart import day_chart, day_start
from shared.web.pages import decode_cursor, split_page

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

KEY_COOKIE = "pingpay_api_key"
JOBS_PER_PAGE = 50
RUNS_PER_PAGE = 20
NEXT_FIRE_TIMES = 5

JobStatus = Literal["active", "inactive", "failed", "completed"]
Action = Literal["pause", "resume", "trigger", "delete"]
Refresh = Annotated[int, Query(ge=0, le=3600)]

#: What a page says after an action; a redirect names one by its key.
NOTICES = {
    "paused": "Paused: nothing fires until you resume it.",
    "resumed": "Resumed: it fires again from its next fire time.",
    # Runs due later than now (planned within the look-ahead) sort above it.
    "triggered": "Triggered: its new run, due now, is marked new in the runs below.",
    "deleted": "Deleted, with its history.",
    "no-future": "This schedule has no fire time after now: give the job a new "
    "schedule (PATCH /jobs/{id}) before resuming it.",
    "key-saved": "API key kept for this browser session.",
    "signed-out": "API key forgotten.",
}

#: The route functions of the REST API each dashboard button runs.
_ACTIONS = {
    "pause": (jobs.pause_job, "paused"),
    "resume": (jobs.resume_job, "resumed"),
    "trigger": (jobs.trigger_job, "triggered"),
    "delete": (jobs.delete_job, "deleted"),
}


@router.get("", response_class=HTMLResponse)
def job_list(
    request: Request,
    status: JobStatus | None = None,
    cursor: str | None = None,
    refresh: Refresh = 0,
    notice: str | None = None,
) -> Response:
    """Jobs with their status, schedule, next fire time and last outcome."""
    store, now = jobs.runtime_of(request).store, utcnow()
    rows = store.jobs.page(status, JOBS_PER_PAGE + 1, decode_cursor(cursor))
    page, next_cursor = split_page(rows, JOBS_PER_PAGE, jobs.job_position)
    context = {
        "jobs": page,
        "status": status,
        "counts": store.jobs.counts(),
        "next_cursor": next_cursor,
        "chart": day_chart(store.runs.hourly_statuses(day_start(now)), now),
    }
    return _page(request, "jobs.html", context, refresh, notice)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: str,
    request: Request,
    cursor: str | None = None,
    refresh: Refresh = 0,
    notice: str | None = None,
    new_run: str | None = None,
) -> Response:
    """One job: its definition, next fire times, runs and their attempts.

    ``new_run`` names the run a Trigger just made, which the page marks.
    """
    store, now = jobs.runtime_of(request).store, utcnow()
    job = store.jobs.get(job_id) if is_id(job_id) else None
    if job is None:
        return _missing(request, job_id)
    rows = store.runs.page_for_job(job_id, RUNS_PER_PAGE + 1, decode_cursor(cursor))
    runs, next_cursor = split_page(rows, RUNS_PER_PAGE, jobs.run_position)
    context = {
        "job": job,
        "runs": runs,
        "attempts": store.runs.attempts_of([run["id"] for run in runs]),
        "next_cursor": next_cursor,
        "fire_times": _next_fire_times(job, now),
        "new_run": new_run,
        "chart": day_chart(store.runs.hourly_statuses(day_start(now), job_id), now),
    }
    return _page(request, "job.html", context, refresh, notice)


@router.post("/jobs/{job_id}/{action}")
def act(job_id: str, action: Action, request: Request) -> Response:
    """Run a button's action, then show the job (or the list, once deleted)."""
    run_action, notice = _ACTIONS[action]
    page = request.url_for("job_page", job_id=job_id)
    try:
        answer = run_action(job_id, request)
    except NotFound:
        return _missing(request, job_id)
    except Conflict:
        return _redirect(page, "no-future")
    if action == "delete":
        return _redirect(request.url_for("job_list"), notice)
    if action == "trigger":
        return _redirect(page, notice, new_run=answer["id"])
    return _redirect(page, notice)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, notice: str | None = None) -> Response:
    """A form that takes the API key the dashboard's requests carry."""
    return _page(request, "login.html", {}, 0, notice)


@router.post("/login")
def login(request: Request, key: Annotated[str, Form(min_length=1)]) -> Response:
    """Keep the key in a cookie for this browser session; on to the jobs.

    Refused when another site's page posts it (login CSRF): that page would
    replace the browser's key with one of its choosing, signing the user out
    or in as whoever holds that key.
    """
    if sent_by_another_site(request.scope):
        detail = "sign-in must be posted from the dashboard's own page"
        return JSONResponse({"detail": detail}, status_code=403)
    response = _redirect(request.url_for("job_list"), "key-saved")
    response.set_cookie(
        KEY_COOKIE,
        key,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the key this browser keeps."""
    response = _redirect(request.url_for("login_form"), "signed-out")
    response.delete_cookie(KEY_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def _next_fire_times(
    job: dict[str, Any], now: datetime, count: int = NEXT_FIRE_TIMES
) -> list[datetime]:
    """The schedule's next fire times after now, planned or not.

    Not ``next_run_at``: that is the first fire time not yet planned, later
    than a run the tick already planned within its look-ahead. A paused or
    finished job fires at no time until it is resumed.
    """
    if job["status"] != "active":
        return []
    return schedule_of(job).fire_times(now, count)


def _next_fire(job: dict[str, Any], now: datetime) -> datetime | None:
    fire_times = _next_fire_times(job, now, count=1)
    return fire_times[0] if fire_times else None


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    refresh: int,
    notice: str | None,
    status_code: int = 200,
) -> Response:
    context |= {
        "now": utcnow(),
        "refresh": refresh,
        "notice": NOTICES.get(notice or ""),
    }
    return templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


def _missing(request: Request, job_id: str) -> Response:
    return _page(request, "missing.html", {"job_id": job_id}, 0, None, 404)


def _redirect(url: Any, notice: str, **params: str) -> RedirectResponse:
    """A redirect by path: behind a proxy, the host the app sees is not the user's."""
    query = urlencode({"notice": notice} | params)
    return RedirectResponse(f"{url.path}?{query}", status_code=303)


# Filters the templates use.


def _milliseconds(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


def _lateness(run: dict[str, Any]) -> float | None:
    started = run["started_at"]
    if started is None:
        return None
    return (started - run["scheduled_for"]) / timedelta(milliseconds=1)


def _query(**params: Any) -> str:
    """``?name=value&…`` of the parameters given a value, or nothing at all."""
    given = {name: value for name, value in params.items() if value}
    return f"?{urlencode(given)}" if given else ""


templates.env.globals["query"] = _query
templates.env.filters |= {
    "ago": relative,
    "local": local_time,
    "utc": iso_z,
    "schedule": describe_schedule,
    "ms": _milliseconds,
    "seconds": duration,
    "lateness": _lateness,
    "next_fire": _next_fire,
}
