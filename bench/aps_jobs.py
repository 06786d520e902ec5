"""What an APScheduler job does in the benchmark: the same request ours sends.

APScheduler stores a reference to :func:`deliver` (``bench.aps_jobs:deliver``)
with each job, so it lives in a module of its own that any process imports.
The fire time is not an argument APScheduler passes; the executor in
``bench.aps_side`` puts it in :data:`fire_time` before the call.
"""

import threading
from datetime import datetime

import requests
from requests.adapters import HTTPAdapter

fire_time = threading.local()
"""``value``: the fire time of the run this thread executes."""

_session = requests.Session()


def use_pool(size: int) -> None:
    """Keep up to ``size`` connections to the sink, one per executor thread."""
    adapter = HTTPAdapter(pool_connections=size, pool_maxsize=size)
    _session.mount("http://", adapter)


def deliver(job_id: str, url: str) -> None:
    """POST a small JSON body to ``url`` naming the job and its fire time."""
    scheduled: datetime = fire_time.value
    response = _session.post(
        url,
        json={"bench": True},
        headers={
            "X-PingPay-Job-Id": job_id,
            "X-PingPay-Scheduled-For": scheduled.isoformat(),
        },
        timeout=30,
    )
    response.raise_for_status()
