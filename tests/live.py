"""The API served over a real socket by uvicorn, for clients that need one.

The command line and the browser talk HTTP to a service; ``live_service``
serves the test's runtime (with a worker delivering runs) on a free port of
127.0.0.1 and stops it after the test.
"""

import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from shared.web.app import create_app
from tests.helpers import wait_for


class LiveService:
    """uvicorn in a thread, on a socket bound before it starts."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            create_app(runtime), log_config=None, access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="test-live-service",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()
        wait_for(lambda: self._server.started, timeout=10)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture
def live_service(worker) -> Iterator[LiveService]:
    """The API of the test's runtime on a real port, with deliveries running."""
    service = LiveService(worker)
    service.start()
    try:
        yield service
    finally:
        service.stop()
