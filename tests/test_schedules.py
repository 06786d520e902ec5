"""Fire-time arithmetic, with fixed instants only.

The cases in ``cases/schedules.json`` come from bug reports against other
schedulers. Around daylight saving changes the fire times are also checked
against a brute-force reading of every minute, and plain cron walks against
croniter's own naive iteration.
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from shared.schedules import Schedule, ScheduleError, check_cron, to_utc, zone

CASES = json.loads((Path(__file__).parent / "cases" / "schedules.json").read_text())

NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
ONE_HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def at(text: str) -> datetime:
    """An instant from ISO 8601 text; without an offset it is UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(values: list[datetime]) -> list[str]:
    return [value.isoformat().replace("+00:00", "Z") for value in values]


def cron(expression: str, timezone: str = "UTC", **window) -> Schedule:
    return Schedule("cron", timezone=timezone, cron_expression=expression, **window)


def recurring(interval: str, value: int, timezone: str = "UTC", **more) -> Schedule:
    return Schedule(
        "recurring", timezone=timezone, interval=interval, interval_value=value, **more
    )


# The shared cases


@pytest.mark.parametrize("case", CASES["cron_next"], ids=lambda case: case["id"])
def test_cron_next(case):
    schedule = cron(case["cron_expression"], case["timezone"])

    fires = schedule.fire_times(at(case["after"]), len(case["next"]))

    assert iso(fires) == case["next"]


@pytest.mark.parametrize("case", CASES["cron_invalid"], ids=lambda case: case["id"])
def test_cron_invalid(case):
    with pytest.raises(ScheduleError) as caught:
        check_cron(case["cron_expression"])

    assert caught.value.field == "cron_expression"


@pytest.mark.parametrize("case", CASES["recurring_next"], ids=lambda case: case["id"])
def test_recurring_next(case):
    tz = zone(case["timezone"])
    start_at = to_utc(datetime.fromisoformat(case["start_at"]), tz, "start_at")
    schedule = recurring(
        case["interval"], case["interval_value"], case["timezone"], start_at=start_at
    )
    count = len(case["fires"])

    from_long_before = schedule.fire_times(start_at - timedelta(days=40), count)
    following = schedule.fire_times(start_at, count - 1)

    assert iso(from_long_before) == case["fires"]
    assert iso([start_at, *following]) == case["fires"]


# Time zones and wall-clock times


def test_to_utc_refuses_a_wall_time_inside_a_spring_forward_gap():
    with pytest.raises(ScheduleError) as caught:
        to_utc(datetime(2026, 3, 8, 2, 30), NEW_YORK, "start_at")

    assert caught.value.field == "start_at"
    assert "does not exist in America/New_York" in caught.value.message
    assert "daylight saving gap" in str(caught.value)


def test_to_utc_reads_a_repeated_wall_time_as_its_first_occurrence():
    assert to_utc(datetime(2026, 11, 1, 1, 30), NEW_YORK, "end_at") == at(
        "2026-11-01T05:30:00Z"
    )


def test_to_utc_handles_half_hour_daylight_saving():
    with pytest.raises(ScheduleError):
        to_utc(datetime(2026, 10, 4, 2, 15), LORD_HOWE, "specific_time")

    # 01:30-02:00 happens twice on 5 April; the first time is still at +11:00.
    first = to_utc(datetime(2026, 4, 5, 1, 45), LORD_HOWE, "specific_time")
    assert first == at("2026-04-04T14:45:00Z")


def test_to_utc_converts_aware_values_and_reads_naive_ones_in_the_zone():
    paris = zone("Europe/Paris")

    aware = to_utc(at("2026-06-01T12:00:00+02:00"), paris, "start_at")
    naive = to_utc(datetime(2026, 6, 1, 12, 0), paris, "start_at")

    assert aware == at("2026-06-01T10:00:00Z")
    assert aware.tzinfo is UTC
    assert naive == at("2026-06-01T10:00:00Z")


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../etc/passwd", "utc "])
def test_unknown_zone_is_a_timezone_error(name):
    with pytest.raises(ScheduleError) as caught:
        zone(name)

    assert caught.value.field == "timezone"


def test_zone_returns_the_named_zone():
    assert zone("Europe/Paris").key == "Europe/Paris"


# Cron expressions


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 9 * * MON-FRI", "0 9 * * 1-5"),
        ("0 9 * * mon,Wed,FRI", "0 9 * * 1,3,5"),
        ("0 0 1 JAN,jul *", "0 0 1 1,7 *"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * SUN", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("0 12 * mar-may/2 *", "0 12 * 3,5 *"),
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@ANNUALLY", "0 0 1 1 *"),
    ],
)
def test_names_and_macros_read_as_their_numbers(expression, expected):
    after = at("2026-02-20T10:11:00Z")

    check_cron(expression)

    assert cron(expression).fire_times(after, 12) == cron(expected).fire_times(
        after, 12
    )


@pytest.mark.parametrize(
    ("expression", "fragments"),
    [
        ("* * * * * *", ["five fields", "seconds"]),
        ("", ["five fields"]),
        ("*/60 * * * *", ["minute", "single value", "recurring", "interval_value 60"]),
        ("0 */24 * * *", ["hour", "recurring"]),
        ("0 0 * * */7", ["day-of-week", "single value"]),
        ("10-20/15 * * * *", ["single value"]),
        ("0 24 * * *", ["hour 24", "0-23"]),
        ("0 0 0 * *", ["day-of-month 0", "1-31"]),
        ("0 0 32 * *", ["day-of-month 32", "1-31"]),
        ("0 0 * 13 *", ["month 13", "1-12"]),
        ("0 0 * * 8", ["day-of-week 8", "0-7"]),
        ("0 0 * FOO *", ["month", "'FOO'"]),
        ("0 0 * * MON#2", ["day-of-week"]),
        ("0 0 1W * *", ["day-of-month"]),
        ("0 0 ? * *", ["day-of-month"]),
        ("0 L * * *", ["L"]),
        ("0 0 * * 5L", ["day-of-week"]),
        ("50-10 * * * *", ["backwards", "50-59,0-10"]),
        ("*/0 * * * *", ["step of 0"]),
        ("1,,2 * * * *", ["minute"]),
        ("@every_5m", ["unknown macro", "@hourly"]),
        ("0 0 31 4,6,9,11 *", ["matches no date", "April"]),
        ("0 0 30,31 2 *", ["matches no date", "February"]),
    ],
)
def test_check_cron_says_what_is_wrong(expression, fragments):
    with pytest.raises(ScheduleError) as caught:
        check_cron(expression)

    assert caught.value.field == "cron_expression"
    for fragment in fragments:
        assert fragment in caught.value.message


@pytest.mark.parametrize(
    "expression",
    ["0 0 29 2 *", "0 0 31 2 1", "0 0 L 2 *", "59 23 31 12 *", "*/59 * * * *"],
)
def test_check_cron_accepts_rare_but_real_dates(expression):
    check_cron(expression)

    assert cron(expression).next_after(at("2026-01-01T00:00:00Z")) is not None


def test_day_of_week_alone_restricts_to_that_weekday():
    fires = cron("0 0 * * 1").fire_times(at("2026-01-01T00:00:00Z"), 10)

    assert {fire.weekday() for fire in fires} == {0}


def test_day_of_month_alone_restricts_to_that_day():
    fires = cron("0 0 13 * *").fire_times(at("2026-01-01T00:00:00Z"), 10)

    assert {fire.day for fire in fires} == {13}


@pytest.mark.parametrize("day_of_month", ["13", "*/10", "1-7"])
def test_both_day_fields_restricted_means_either_matches(day_of_month):
    schedule = cron(f"0 0 {day_of_month} * 5")
    wanted = set(croniter.expand(f"0 0 {day_of_month} * *")[0][2])

    fires = schedule.fire_times(at("2026-01-01T00:00:00Z"), 40)

    assert all(fire.day in wanted or fire.weekday() == 4 for fire in fires)
    assert any(fire.day in wanted and fire.weekday() != 4 for fire in fires)
    assert any(fire.day not in wanted and fire.weekday() == 4 for fire in fires)


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",
        "0 9 * * 1-5",
        "15,45 */2 * * *",
        "0 0 L * *",
        "0 7 15 * 1",
        "30 4 1,15 * 5",
        "0 0 29 2 *",
        "0 12 * 1,7 0",
        "5 4 * * 0",
        "0 0 1-7 * 1",
        "0-10/3 22-23 * * *",
        "@weekly",
    ],
)
@pytest.mark.parametrize(
    "start", ["2026-01-01T00:00:00", "2027-02-27T23:59:30", "2028-12-31T23:00:00"]
)
def test_utc_cron_walks_like_croniter(expression, start):
    naive_start = datetime.fromisoformat(start)
    walker = croniter(expression, naive_start)
    expected = [walker.get_next(datetime).replace(tzinfo=UTC) for _ in range(25)]

    assert cron(expression).fire_times(at(start), 25) == expected


# Cron across daylight saving changes

TRANSITIONS_2026 = [
    ("America/New_York", "2026-03-08"),
    ("America/New_York", "2026-11-01"),
    ("Europe/London", "2026-03-29"),
    ("Europe/London", "2026-10-25"),
    ("Australia/Lord_Howe", "2026-04-05"),
    ("Australia/Lord_Howe", "2026-10-04"),
]

EXPRESSIONS_ACROSS_DST = [
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "45 */2 * * *",
    "* 1 * * *",
    "30 1 * * *",
    "30 2 * * *",
    "15 2 * * *",
    "0,30 1-2 * * *",
    "0 2,3 * * *",
]


def matching_walls(expression: str, start: datetime, end: datetime) -> set[datetime]:
    """Every naive wall time from `start` to `end` that the expression names."""
    walker = croniter(expression, start)
    walls = set()
    while (wall := walker.get_next(datetime)) <= end:
        walls.add(wall)
    return walls


def brute_force_fires(
    expression: str, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    """Fire times read off minute by minute, straight from the rules."""
    fields = expression.split()
    elapsed = fields[0].startswith("*") or fields[1].startswith("*")
    local_start = start.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
    walls = matching_walls(expression, local_start, local_start + timedelta(days=4))

    fires = []
    minute = start + timedelta(minutes=1)
    while minute <= end:
        local = minute.astimezone(tz)
        wall = local.replace(tzinfo=None)
        fires_here = wall in walls and (elapsed or local.fold == 0)
        if not elapsed:
            # A fixed time skipped by a gap fires at the first instant after it.
            before = (minute - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
            skipped = {w for w in walls if before < w < wall}
            fires_here = fires_here or bool(skipped)
        if fires_here:
            fires.append(minute)
        minute += timedelta(minutes=1)
    return fires


@pytest.mark.parametrize("expression", EXPRESSIONS_ACROSS_DST)
@pytest.mark.parametrize(("timezone", "day"), TRANSITIONS_2026)
def test_cron_across_daylight_saving_matches_the_minute_by_minute_rules(
    expression, timezone, day
):
    tz = zone(timezone)
    start = datetime.fromisoformat(day).replace(tzinfo=tz) - timedelta(hours=12)
    end = start + timedelta(hours=36)
    assert start.utcoffset() != end.utcoffset(), "window must cover the change"
    expected = brute_force_fires(expression, tz, start.astimezone(UTC), end)

    fires = cron(expression, timezone).fire_times(start, len(expected) + 1)

    assert fires[:-1] == expected
    assert fires[-1] > end
    assert all(a < b for a, b in zip(fires, fires[1:], strict=False))


def test_elapsed_cron_fires_in_both_occurrences_of_a_repeated_hour():
    day_start = at("2026-11-01T04:00:00Z")  # midnight in New York, still EDT

    fires = cron("*/30 * * * *", "America/New_York").fire_times(day_start - SECOND, 60)
    that_day = [fire for fire in fires if fire < at("2026-11-02T05:00:00Z")]

    assert len(that_day) == 50
    assert iso(that_day[2:6]) == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
    ]


def test_elapsed_cron_skips_wall_times_a_gap_removes():
    day_start = at("2026-03-08T05:00:00Z")  # midnight in New York, EST

    fires = cron("30 * * * *", "America/New_York").fire_times(day_start, 3)

    assert iso(fires) == [
        "2026-03-08T05:30:00Z",
        "2026-03-08T06:30:00Z",
        "2026-03-08T07:30:00Z",
    ]


def test_fixed_cron_fires_once_when_two_times_fall_in_one_gap():
    fires = cron("0 2,3 * * *", "America/New_York").fire_times(
        at("2026-03-08T05:00:00Z"), 3
    )

    assert iso(fires) == [
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:00:00Z",
        "2026-03-09T07:00:00Z",
    ]


def test_fixed_cron_in_a_half_hour_gap_fires_when_the_gap_ends():
    fires = cron("15 2 * * *", "Australia/Lord_Howe").fire_times(
        at("2026-10-03T12:00:00Z"), 2
    )

    # 02:15 does not exist on 4 October; 02:30 (+11:00) is the gap's end.
    assert iso(fires) == ["2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"]


def test_next_after_inside_the_second_occurrence_of_a_repeated_hour():
    schedule = cron("*/15 * * * *", "America/New_York")

    # 06:10Z is 01:10 EST, the second time New York shows 01:10.
    assert schedule.next_after(at("2026-11-01T06:10:00Z")) == at("2026-11-01T06:15:00Z")
    assert cron("30 1 * * *", "America/New_York").next_after(
        at("2026-11-01T05:45:00Z")
    ) == at("2026-11-02T06:30:00Z")


# Windows and one-time schedules


def test_cron_fires_only_inside_start_at_and_end_at_inclusive():
    schedule = cron(
        "0 * * * *",
        start_at=at("2026-01-01T10:00:00Z"),
        end_at=at("2026-01-01T13:00:00Z"),
    )

    fires = schedule.fire_times(at("2025-12-31T00:00:00Z"), 10)

    assert iso(fires) == [
        "2026-01-01T10:00:00Z",
        "2026-01-01T11:00:00Z",
        "2026-01-01T12:00:00Z",
        "2026-01-01T13:00:00Z",
    ]
    assert schedule.next_after(at("2026-01-01T13:00:00Z")) is None


def test_start_at_between_fire_times_starts_at_the_next_one():
    schedule = cron("0 * * * *", start_at=at("2026-01-01T10:30:00Z"))

    assert schedule.next_after(at("2026-01-01T00:00:00Z")) == at("2026-01-01T11:00:00Z")


def test_specific_time_fires_once_inside_its_window():
    fire = at("2026-05-01T08:00:00Z")
    schedule = Schedule("specific_time", specific_time=fire)

    assert schedule.fire_times(at("2026-04-01T00:00:00Z"), 5) == [fire]
    assert schedule.next_after(fire) is None
    assert schedule.fire_times(fire - timedelta(seconds=1), 0) == []

    too_late = Schedule("specific_time", specific_time=fire, end_at=fire - ONE_HOUR)
    too_early = Schedule("specific_time", specific_time=fire, start_at=fire + ONE_HOUR)
    assert too_late.next_after(at("2026-04-01T00:00:00Z")) is None
    assert too_early.next_after(at("2026-04-01T00:00:00Z")) is None


def test_recurring_stops_at_end_at():
    start = at("2026-01-01T00:00:00Z")
    schedule = recurring("hour", 6, start_at=start, end_at=start + timedelta(days=1))

    fires = schedule.fire_times(start - ONE_HOUR, 10)

    assert fires == [start + n * 6 * ONE_HOUR for n in range(5)]


# Recurring intervals


def test_recurring_without_start_at_fires_one_step_after_the_anchor():
    anchor = at("2026-03-01T12:34:00Z")
    schedule = recurring("hour", 2, anchor=anchor)

    assert schedule.next_after(anchor - timedelta(days=1)) == at("2026-03-01T14:34:00Z")
    assert schedule.next_after(anchor) == at("2026-03-01T14:34:00Z")


def test_monthly_without_start_at_clamps_from_the_anchor():
    anchor = at("2026-01-31T10:17:00Z")
    schedule = recurring("month", 1, anchor=anchor)

    fires = schedule.fire_times(anchor, 3)

    assert iso(fires) == [
        "2026-02-28T10:17:00Z",
        "2026-03-31T10:17:00Z",
        "2026-04-30T10:17:00Z",
    ]


@pytest.mark.parametrize(
    ("interval", "start", "expected"),
    [
        (
            "day",
            "2026-03-27T09:00:00",
            ["2026-03-27T08:00:00Z", "2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"],
        ),
        (
            "day",
            "2026-10-24T09:00:00",
            ["2026-10-24T07:00:00Z", "2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"],
        ),
        (
            "week",
            "2026-03-22T09:00:00",
            ["2026-03-22T08:00:00Z", "2026-03-29T07:00:00Z", "2026-04-05T07:00:00Z"],
        ),
        (
            "week",
            "2026-10-18T09:00:00",
            ["2026-10-18T07:00:00Z", "2026-10-25T08:00:00Z", "2026-11-01T08:00:00Z"],
        ),
    ],
)
def test_calendar_steps_keep_local_time_across_dst_in_paris(interval, start, expected):
    paris = zone("Europe/Paris")
    start_at = to_utc(datetime.fromisoformat(start), paris, "start_at")
    schedule = recurring(interval, 1, "Europe/Paris", start_at=start_at)

    fires = schedule.fire_times(start_at - ONE_HOUR, 3)

    assert iso(fires) == expected
    assert {fire.astimezone(paris).hour for fire in fires} == {9}


def test_daily_step_into_a_gap_fires_when_the_gap_ends():
    start_at = to_utc(datetime(2026, 3, 7, 2, 30), NEW_YORK, "start_at")
    schedule = recurring("day", 1, "America/New_York", start_at=start_at)

    fires = schedule.fire_times(start_at - ONE_HOUR, 3)

    assert iso(fires) == [
        "2026-03-07T07:30:00Z",
        "2026-03-08T07:00:00Z",
        "2026-03-09T06:30:00Z",
    ]


def test_daily_step_into_a_repeated_hour_fires_at_its_first_occurrence():
    start_at = to_utc(datetime(2026, 10, 31, 1, 30), NEW_YORK, "start_at")
    schedule = recurring("day", 1, "America/New_York", start_at=start_at)

    fires = schedule.fire_times(start_at, 2)

    assert iso(fires) == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]


def test_hourly_steps_are_elapsed_time_across_a_gap():
    start_at = at("2026-03-08T06:00:00Z")  # 01:00 EST
    schedule = recurring("hour", 1, "America/New_York", start_at=start_at)

    fires = schedule.fire_times(start_at, 2)

    assert iso(fires) == ["2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]


def test_minute_interval_anchored_years_ago_computes_the_next_fire_directly():
    anchor = at("2023-01-01T00:00:00Z")
    step = timedelta(minutes=7)
    schedule = recurring("minute", 7, anchor=anchor)
    fire = anchor + 250_000 * step  # more than three years on

    assert schedule.next_after(fire - timedelta(minutes=3)) == fire
    assert schedule.next_after(fire) == fire + step
    assert schedule.fire_times(fire, 2) == [fire + step, fire + 2 * step]


def test_yearly_calendar_step_after_decades_lands_on_the_right_fire():
    start_at = at("2000-02-29T12:00:00Z")
    schedule = recurring("year", 4, start_at=start_at)

    assert iso(schedule.fire_times(at("2099-01-01T00:00:00Z"), 2)) == [
        "2100-02-28T12:00:00Z",
        "2104-02-29T12:00:00Z",
    ]


@pytest.mark.parametrize("interval", ["minute", "hour", "day", "week", "month", "year"])
@pytest.mark.parametrize("timezone", ["America/New_York", "Australia/Lord_Howe"])
def test_recurring_fire_times_strictly_increase_across_a_year(interval, timezone):
    tz = zone(timezone)
    start_at = to_utc(datetime(2026, 1, 31, 1, 45), tz, "start_at")
    value = {"minute": 97, "hour": 5}.get(interval, 1)
    schedule = recurring(interval, value, timezone, start_at=start_at)

    fires = schedule.fire_times(start_at - ONE_HOUR, 400)

    assert fires[0] == start_at
    assert all(a < b for a, b in zip(fires, fires[1:], strict=False))
    assert [schedule.next_after(fire) for fire in fires[:-1]] == fires[1:]


# Building a schedule


def test_naive_instants_are_taken_as_utc():
    schedule = Schedule("specific_time", specific_time=datetime(2026, 5, 1, 8, 0))

    assert schedule.specific_time == at("2026-05-01T08:00:00Z")
    assert schedule.next_after(datetime(2026, 5, 1, 7, 0)) == schedule.specific_time


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "weekly"}, "schedule_type"),
        ({"kind": "cron"}, "cron_expression"),
        ({"kind": "specific_time"}, "specific_time"),
        (
            {"kind": "recurring", "interval": "fortnight", "interval_value": 1},
            "interval",
        ),
        (
            {"kind": "recurring", "interval": "day", "interval_value": 0},
            "interval_value",
        ),
        ({"kind": "recurring", "interval": "day", "interval_value": 1}, "start_at"),
    ],
)
def test_a_schedule_missing_what_its_kind_needs_is_refused(fields, field):
    with pytest.raises(ScheduleError) as caught:
        Schedule(**fields)

    assert caught.value.field == field


def test_unknown_zone_on_a_schedule_is_a_timezone_error():
    schedule = cron("0 9 * * *", "Europe/Atlantis")

    with pytest.raises(ScheduleError) as caught:
        schedule.next_after(at("2026-01-01T00:00:00Z"))

    assert caught.value.field == "timezone"
