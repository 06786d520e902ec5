"""The REST API of a running service, over HTTP.

The service to talk to and the key to show it come from flags, or else from
``PINGPAY_URL`` and ``PINGPAY_API_KEY`` (in the environment or a ``.env``
file); without a URL the client talks to this machine's ``PORT``. Every
error is one of a few classes, so the command line can turn each into an
exit code scripts can trust.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import requests
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import get_settings

Json = dict[str, Any]
Busy = Callable[[str], AbstractContextManager[Any]]

#: Longest id the API gives; anything shorter is taken as the start of one.
ID_LENGTH = 36


class ClientSettings(BaseSettings):
    """Where the service is, and the key it asks for."""

    model_config = SettingsConfigDict(
        env_prefix="PINGPAY_", env_file=".env", extra="ignore"
    )

    url: str | None = None
    api_key: SecretStr | None = None


class ApiError(Exception):
    """The service did not do what was asked; the message says why.

    ``status`` is the HTTP status the service answered with, if it answered.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Refused(ApiError):
    """The service refused the request as invalid or conflicting (4xx)."""


class Missing(ApiError):
    """No job or run has the id given."""


class Denied(ApiError):
    """The service wants an API key, or another one (401, 403)."""


class Unreachable(ApiError):
    """No answer, or the service said it cannot serve now (5xx)."""


class Ambiguous(ApiError):
    """An id prefix that starts several ids."""


class ApiClient:
    """One service's API; ``busy`` shows progress while a request is out."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30,
        busy: Busy | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "pingpay-scheduler-cli"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self._busy = busy or _idle

    @classmethod
    def from_settings(
        cls, url: str | None, api_key: str | None, busy: Busy | None = None
    ) -> "ApiClient":
        """Flags first, then ``PINGPAY_URL`` / ``PINGPAY_API_KEY``, then PORT."""
        settings = ClientSettings()
        key = api_key or (settings.api_key and settings.api_key.get_secret_value())
        url = url or settings.url or f"http://127.0.0.1:{get_settings().port}"
        return cls(url, key, busy=busy)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """No progress shown for requests inside (the caller shows its own)."""
        busy, self._busy = self._busy, _idle
        try:
            yield
        finally:
            self._busy = busy

    # Jobs.

    def jobs(
        self, status: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Json], str | None]:
        """A page of jobs and the cursor of the next page, if any."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        response = self._call("GET", "/jobs", params=params)
        return response.json(), response.headers.get("X-Next-Cursor")

    def job(self, job_id: str) -> Json:
        return self._call("GET", f"/jobs/{job_id}").json()

    def create(self, body: Json) -> Json:
        return self._call("POST", "/jobs", json=body).json()

    def pause(self, job_id: str) -> Json:
        return self._call("POST", f"/jobs/{job_id}/pause").json()

    def resume(self, job_id: str) -> Json:
        return self._call("POST", f"/jobs/{job_id}/resume").json()

    def trigger(self, job_id: str) -> Json:
        return self._call("POST", f"/jobs/{job_id}/trigger").json()

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/jobs/{job_id}")

    # Runs.

    def runs(
        self, job_id: str, limit: int = 20, status: str | None = None
    ) -> list[Json]:
        params = {"limit": limit, "status": status}
        return self._call("GET", f"/jobs/{job_id}/runs", params=params).json()

    def run(self, run_id: str) -> Json:
        return self._call("GET", f"/runs/{run_id}").json()

    # Ids.

    def job_id(self, given: str) -> str:
        """The whole id of the job whose id is, or starts with, ``given``."""
        if len(given) >= ID_LENGTH:
            return given
        return _one("job", given, (job["id"] for job in self._all_jobs()))

    def run_id(self, job_id: str, given: str) -> str:
        """The whole id of the job's recent run whose id starts with ``given``."""
        if len(given) >= ID_LENGTH:
            return given
        return _one("run", given, (run["id"] for run in self.runs(job_id, 1000)))

    def _all_jobs(self) -> Iterator[Json]:
        cursor = None
        while True:
            page, cursor = self.jobs(limit=1000, cursor=cursor)
            yield from page
            if not cursor:
                return

    # The exchange.

    def _call(self, method: str, path: str, **options: Any) -> requests.Response:
        """Send a request; turn a failure into one of this module's errors."""
        if "params" in options:
            options["params"] = {
                k: v for k, v in options["params"].items() if v is not None
            }
        try:
            with self._busy(f"{method} {path}"):
                response = self.session.request(
                    method, self.url + path, timeout=self.timeout, **options
                )
        except requests.RequestException as error:
            raise Unreachable(
                f"no answer from {self.url} ({type(error).__name__}): is the "
                "service running there? Set --url or PINGPAY_URL."
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        is_json = "json" in response.headers.get("Content-Type", "")
        if response.status_code != 204 and not is_json:
            raise Unreachable(
                f"{self.url} answered, but not as a PingPay Scheduler API: "
                "check --url or PINGPAY_URL."
            )
        return response


def _idle(_text: str) -> AbstractContextManager[Any]:
    return nullcontext()


def _one(kind: str, prefix: str, ids: Iterator[str]) -> str:
    matches = [identifier for identifier in ids if identifier.startswith(prefix)]
    if not matches:
        raise Missing(f"no {kind} id starts with {prefix!r}")
    if len(matches) > 1:
        raise Ambiguous(
            f"{len(matches)} {kind} ids start with {prefix!r}: give more of it"
        )
    return matches[0]


def _error_of(response: requests.Response) -> ApiError:
    """The error class and message an answer of 400 or more stands for."""
    status = response.status_code
    detail = _detail(response)
    if status == 404:
        return Missing(detail, status)
    if status in (401, 403):
        return Denied(
            f"{detail} (HTTP {status}): give a key with --key or PINGPAY_API_KEY",
            status,
        )
    if status >= 500:
        return Unreachable(
            f"the service cannot answer now (HTTP {status}): {detail}", status
        )
    return Refused(detail, status)


def _detail(response: requests.Response) -> str:
    """The API's ``detail``: a sentence, or each bad field with what is wrong."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:300] or response.reason
    if isinstance(detail, list):
        return "; ".join(_field_problem(item) for item in detail)
    return str(detail)


def _field_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = [str(part) for part in item.get("loc", []) if part not in ("body", "query")]
    return f"{'.'.join(where) or 'request'}: {item.get('msg', 'invalid')}"
