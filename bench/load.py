"""HTTP load from concurrent clients, with every request's latency kept.

The clients run on one asyncio loop in the harness (aiohttp, keep-alive),
spreading requests over the API instances in turn, as a load balancer would.
"""

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.service import AUTHORIZATION

#: Builds the i-th request: (method, path, JSON body or None).
RequestMaker = Callable[[int], tuple[str, str, Any]]


@dataclass
class LoadResult:
    """Latencies (seconds) of the requests that got an expected answer."""

    latencies: list[float] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def drive(
    base_urls: list[str],
    make: RequestMaker,
    clients: int,
    total: int | None = None,
    seconds: float | None = None,
    keep_answers: bool = False,
    stop: asyncio.Event | None = None,
    pause: float = 0.0,
) -> LoadResult:
    """Send requests from ``clients`` concurrent clients.

    Stops after ``total`` requests, after ``seconds``, or when ``stop`` is
    set, whichever comes first. Each client waits ``pause`` seconds between
    its requests.
    """
    result = LoadResult()
    counter = itertools.count()
    deadline = time.monotonic() + seconds if seconds else None
    stop = stop or asyncio.Event()

    def next_index() -> int | None:
        index = next(counter)
        if total is not None and index >= total:
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None
        return None if stop.is_set() else index

    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    started = time.monotonic()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=AUTHORIZATION
    ) as session:
        client = _Client(session, base_urls, make, result, keep_answers, pause)
        await asyncio.gather(*(client.loop(next_index) for _ in range(clients)))
    result.seconds = time.monotonic() - started
    return result


@dataclass
class _Client:
    session: aiohttp.ClientSession
    base_urls: list[str]
    make: RequestMaker
    result: LoadResult
    keep_answers: bool
    pause: float

    async def loop(self, next_index: Callable[[], int | None]) -> None:
        while (index := next_index()) is not None:
            await self.one(index)
            if self.pause:
                await asyncio.sleep(self.pause)

    async def one(self, index: int) -> None:
        method, path, body = self.make(index)
        url = self.base_urls[index % len(self.base_urls)] + path
        started = time.monotonic()
        try:
            async with self.session.request(method, url, json=body) as response:
                answer = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self.result.error(type(error).__name__)
            return
        if status >= 400:
            self.result.error(f"HTTP {status}")
            return
        self.result.latencies.append(time.monotonic() - started)
        if self.keep_answers:
            self.result.answers.append(answer)
