"""Delivery slots: how many attempts the whole service runs at once.

Each worker process runs at most ``WORKER_CONCURRENCY`` attempts, but several
processes (and execute invocations) share one database. The table
``delivery_slots`` holds one row per attempt the service may run at once,
numbered from 1 to ``MAX_DELIVERIES_IN_FLIGHT``. A worker takes a free row in
the transaction that starts an attempt and frees it in the transaction that
records the attempt, so an attempt in flight always holds a row.

A row is free when it holds no run, or when its lease has expired: the worker
holding it died mid-attempt, and the run's own lease (the same instant) lets
the tick's sweep queue the run again. Rows are locked last in every
transaction (after the job and the run), and with ``SKIP LOCKED``, so taking
a slot never waits behind another worker's transaction.
"""

from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared.store.tables import delivery_slots as slots

_LOCK_FREE = (
    select(slots.c.number)
    .where(
        slots.c.number <= bindparam("cap"),
        or_(
            slots.c.run_id.is_(None),
            slots.c.lease_expires_at < bindparam("now"),
        ),
    )
    .order_by(slots.c.number)
    .limit(bindparam("wanted"))
    .with_for_update(skip_locked=True)
)

_HOLD = update(slots).where(slots.c.number == bindparam("b_number"))

_FREE_RUNS_SLOTS = (
    update(slots)
    .where(slots.c.run_id.in_(bindparam("runs", expanding=True)))
    .values(run_id=None, lease_expires_at=None)
)


def provide(engine: Engine, cap: int) -> None:
    """Make sure rows 1 to ``cap`` exist; rows beyond ``cap`` are left unused.

    Every process that starts attempts calls this once; doing it twice, or
    from several processes at once, changes nothing.
    """
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    rows = [{"number": number} for number in range(1, cap + 1)]
    with engine.begin() as conn:
        conn.execute(dialect.insert(slots).on_conflict_do_nothing(), rows)


def lock_free(conn: Connection, cap: int, wanted: int, now: datetime) -> list[int]:
    """Up to ``wanted`` free slots, locked until the transaction ends.

    Slots that another transaction has locked are skipped, not waited for.
    """
    if not wanted:
        return []
    params = {"cap": cap, "now": now, "wanted": wanted}
    return list(conn.scalars(_LOCK_FREE, params))


def hold(conn: Connection, rows: list[dict]) -> None:
    """Give locked slots to runs: rows of ``b_number``, ``run_id`` and
    ``lease_expires_at``."""
    if rows:
        conn.execute(_HOLD, rows)


def free(conn: Connection, run_ids: list[str]) -> None:
    """Give back the slots these runs hold, if they hold any."""
    conn.execute(_FREE_RUNS_SLOTS, {"runs": run_ids})
