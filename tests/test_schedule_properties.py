"""Properties of the cron parser over any input, found by Hypothesis.

Any string is either refused with a ScheduleError (a 422 at the API) or
accepted; an accepted expression gives fire times that strictly increase, that
each match the expression, and with no matching minute left out between them.
"Match" is read here by a plain reference reading of the fields, written from
the README's rules rather than from the parser.
"""

import calendar
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.schedules import Schedule, ScheduleError, check_cron

MONTHS = [m.lower() for m in calendar.month_abbr[1:]]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# (lowest, highest accepted, last of the cycle, names) for each field.
FIELDS = [
    (0, 59, 59, []),
    (0, 23, 23, []),
    (1, 31, 31, []),
    (1, 12, 12, MONTHS),
    (0, 7, 6, DAYS),
]
ZONES = ["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# What to feed the parser: anything; things shaped like cron with junk in
# them; and expressions whose every value is in range, mostly valid.

junk_values = st.one_of(
    st.integers(0, 70).map(str),
    st.sampled_from(MONTHS + DAYS + ["L", "l", "x", "", "0x1", "-1", "007"]),
)
junk_items = st.one_of(
    st.just("*"),
    junk_values,
    st.tuples(junk_values, junk_values).map("-".join),
).flatmap(
    lambda item: st.one_of(
        st.just(item), st.integers(0, 100).map(lambda step: f"{item}/{step}")
    )
)
mangled = st.lists(
    st.lists(junk_items, min_size=1, max_size=4).map(",".join), min_size=4, max_size=6
).map(" ".join)


def in_range_field(index: int) -> st.SearchStrategy[str]:
    low, high, top, names = FIELDS[index]
    number = st.integers(low, high)
    value = st.one_of(number.map(str), st.sampled_from(names)) if names else number
    span = st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
    )
    item = st.tuples(span, st.none() | st.integers(1, min(top, 10))).map(
        lambda pair: pair[0] if pair[1] is None else f"{pair[0]}/{pair[1]}"
    )
    if index == 2:
        item = item | st.just("L")
    return st.lists(item, min_size=1, max_size=3).map(",".join)


in_range = st.tuples(*(in_range_field(i) for i in range(5))).map(" ".join)
macros = st.sampled_from([*MACROS, "@every", "@reboot", "@HOURLY"])
any_text = st.one_of(st.text(max_size=40), mangled, in_range, macros)
valid_cron = (in_range | macros).filter(lambda text: _valid(text))
instants = st.datetimes(datetime(1971, 1, 1), datetime(2100, 1, 1)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


@given(expression=any_text)
@PROPERTIES
def test_any_string_is_refused_with_a_schedule_error_or_accepted(expression):
    try:
        check_cron(expression)
    except ScheduleError as error:
        assert error.field == "cron_expression"
        assert error.message


@given(expression=valid_cron, after=instants)
@PROPERTIES
def test_utc_fire_times_increase_match_and_skip_nothing(expression, after):
    fires = Schedule("cron", cron_expression=expression).fire_times(after, 4)

    assert fires, f"{expression!r} never fires after {after}"
    for earlier, fire in zip([after, *fires], fires, strict=False):
        assert fire > earlier
        assert fire.second == 0 and fire.microsecond == 0
        assert matches(expression, fire.replace(tzinfo=None)), fire
        _assert_no_match_between(expression, earlier, fire)


@given(expression=valid_cron, after=instants, timezone=st.sampled_from(ZONES))
@PROPERTIES
def test_zoned_fire_times_increase_and_match_or_follow_a_gap(
    expression, after, timezone
):
    schedule = Schedule("cron", cron_expression=expression, timezone=timezone)
    zone = ZoneInfo(timezone)

    fires = schedule.fire_times(after, 4)

    for earlier, fire in zip([after, *fires], fires, strict=False):
        assert fire > earlier
        wall = fire.astimezone(zone).replace(tzinfo=None)
        # A wall time that a spring-forward gap skips fires just after it.
        after_gap = (fire - timedelta(hours=3)).astimezone(zone).utcoffset() != (
            fire.astimezone(zone).utcoffset()
        )
        assert matches(expression, wall) or after_gap, (fire, wall)


# The reference reading of an expression.


def matches(expression: str, wall: datetime) -> bool:
    """True if the naive wall time ``wall`` is one the expression names."""
    minutes, hours, days, last_day, months, weekdays, either = _reading(expression)
    by_date = wall.day in days or (last_day and wall.day == _last_day(wall))
    by_weekday = wall.isoweekday() % 7 in weekdays
    day_matches = (by_date or by_weekday) if either else by_date and by_weekday
    return (
        wall.minute in minutes
        and wall.hour in hours
        and wall.month in months
        and day_matches
    )


@lru_cache
def _reading(expression: str) -> tuple:
    """Each field's values, whether L is there, and whether either day may match."""
    text = MACROS.get(expression.strip().lower(), expression)
    minute, hour, day, month, weekday = text.split()
    return (
        _values(minute, 0),
        _values(hour, 1),
        _values(day, 2),
        "l" in day.lower().split(","),
        _values(month, 3),
        {value % 7 for value in _values(weekday, 4)},
        day != "*" and weekday != "*",
    )


def _values(text: str, index: int) -> set[int]:
    low, _high, top, names = FIELDS[index]
    found: set[int] = set()
    for item in text.lower().split(","):
        if item == "l":
            continue
        span, _, step = item.partition("/")
        first, _, last = span.partition("-")
        if first == "*":
            start, end = low, top
        else:
            start = _number(first, names)
            end = _number(last, names) if last else (top if step else start)
        found |= set(range(start, end + 1, int(step or 1)))
    return found


def _number(token: str, names: list[str]) -> int:
    if token in names:
        return names.index(token) + (1 if names is MONTHS else 0)
    return int(token)


def _last_day(wall: datetime) -> int:
    return calendar.monthrange(wall.year, wall.month)[1]


def _valid(expression: str) -> bool:
    try:
        check_cron(expression)
    except ScheduleError:
        return False
    return True


def _assert_no_match_between(expression: str, start: datetime, end: datetime) -> None:
    """No minute strictly between two fire times matches; checked within 6 h."""
    if end - start > timedelta(hours=6):
        return
    minute = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < end:
        assert not matches(expression, minute.replace(tzinfo=None)), minute
        minute += timedelta(minutes=1)
