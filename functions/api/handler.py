"""API function: the FastAPI app behind API Gateway (HTTP or REST API) or a
function URL, through Mangum."""

from mangum import Mangum

from shared.logs import configure_logging
from shared.runtime import build_runtime
from shared.settings import get_settings
from shared.web.app import create_app

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
# Built once per container and reused by every invocation. Nothing stays up
# between invocations, so runs go to the queue with their fire time as ETA,
# and no lifespan runs: the app gets this runtime as it is built.
runtime = build_runtime(settings, dispatch="eta")
handler = Mangum(create_app(runtime), lifespan="off")
