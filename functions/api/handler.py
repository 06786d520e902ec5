"""API function: the FastAPI app behind API Gateway or a function URL."""

from mangum import Mangum

from shared.logs import configure_logging
from shared.runtime import build_runtime
from shared.settings import get_settings
from shared.web.app import create_app

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
# Built once per container and reused by every invocation. Nothing stays up
# between invocations, so runs go to the queue with their fire time as ETA.
runtime = build_runtime(settings, dispatch="eta")
handler = Mangum(create_app(runtime), lifespan="off")
