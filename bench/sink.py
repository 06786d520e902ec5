"""The HTTP target both systems deliver to: it answers at once and remembers.

Each arrival is kept as (arrival time, job id, fire time, run id): the job
and its fire time come from the ``X-PingPay-Job-Id`` and
``X-PingPay-Scheduled-For`` headers, which the APScheduler side sends too.
The harness reads the arrivals back through ``/_arrivals``.

Run it as ``python -m bench.sink PORT`` in a process of its own, so that its
work is not counted against either system.
"""

import sys
import time

from aiohttp import web

Arrival = tuple[float, str, str, str]


def create_app() -> web.Application:
    arrivals: list[Arrival] = []

    async def receive(request: web.Request) -> web.Response:
        # Stamped before the body is read: the request has arrived.
        now = time.time()
        headers = request.headers
        arrivals.append(
            (
                now,
                headers.get("X-PingPay-Job-Id", ""),
                headers.get("X-PingPay-Scheduled-For", ""),
                headers.get("X-PingPay-Run-Id", ""),
            )
        )
        await request.read()
        return web.Response(status=200)

    async def count(_request: web.Request) -> web.Response:
        jobs = len({arrival[1] for arrival in arrivals})
        return web.json_response({"arrivals": len(arrivals), "jobs": jobs})

    async def dump(request: web.Request) -> web.Response:
        start = int(request.query.get("from", "0"))
        return web.json_response(arrivals[start:])

    async def reset(_request: web.Request) -> web.Response:
        arrivals.clear()
        return web.json_response({"arrivals": 0})

    app = web.Application()
    app.router.add_get("/_count", count)
    app.router.add_get("/_arrivals", dump)
    app.router.add_post("/_reset", reset)
    app.router.add_route("*", "/{path:.*}", receive)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None)
