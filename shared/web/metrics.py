"""``GET /metrics``: Prometheus figures of this process and of the service."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from shared.metrics import exposition

router = APIRouter(tags=["service"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """This process's counters, and queue depth, runs and jobs read right now."""
    body = exposition(request.app.state.runtime)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
