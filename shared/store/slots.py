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

_FREE = (
    select(slots.c.number)
    .where(
        slots.c.number <= bindparam("cap"),
        or_(
            slots.c.run_id.is_(None),
            slots.c.lease_expires_at < bindparam("now"),
        ),
    )
    .order_by(slots.c.number)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)

_TAKE = (
    update(slots)
    .where(slots.c.number == _FREE)
    .values(run_id=bindparam("run"), lease_expires_at=bindparam("until"))
    .returning(slots.c.number)
)

_FREE_RUNS_SLOT = (
    update(slots)
    .where(slots.c.run_id == bindparam("run"))
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


def take(
    conn: Connection, cap: int, run_id: str, now: datetime, until: datetime
) -> bool:
    """Hold a free slot for ``run_id`` until ``until``; False when none is free."""
    params = {"cap": cap, "now": now, "run": run_id, "until": until}
    return conn.execute(_TAKE, params).first() is not None


def free(conn: Connection, run_id: str) -> None:
    """Give back the slot ``run_id`` holds, if it holds one."""
    conn.execute(_FREE_RUNS_SLOT, {"run": run_id})
