"""The one error of fire-time arithmetic: an invalid schedule, naming its field."""


class ScheduleError(ValueError):
    """An invalid schedule; `field` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
