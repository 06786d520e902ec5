"""Errors with meaning, turned into HTTP answers in one place (``web.app``)."""


class NotFound(Exception):
    """An id that names nothing."""

    def __init__(self, kind: str, identifier: str) -> None:
        self.kind = kind
        self.identifier = identifier
        super().__init__(f"{kind} {identifier} not found")


class InvalidFields(Exception):
    """Request fields that are each valid alone but wrong together.

    ``problems`` holds ``(field, message, value)`` triples, answered as a 422
    in the same shape as FastAPI's own validation errors; ``location`` says
    where the fields are (``body`` or ``query``).
    """

    def __init__(
        self, problems: list[tuple[str, str, object]], location: str = "body"
    ) -> None:
        self.problems = problems
        self.location = location
        super().__init__("; ".join(f"{field}: {msg}" for field, msg, _ in problems))


class Unavailable(Exception):
    """A dependency (the database or the queue) that does not answer."""

    def __init__(self, dependency: str, reason: str) -> None:
        self.dependency = dependency
        self.reason = reason
        super().__init__(f"{dependency} unavailable: {reason}")


class Conflict(Exception):
    """A request the job's current state does not allow."""
