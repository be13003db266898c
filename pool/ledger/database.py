"""PostgreSQL: the connection pool, schema migrations and the upkeep of the daily share partitions.

Migrations are the numbered files ``sql/NNN_name.sql``, applied in order, each in one transaction
together with its row in ``schema_version``. `migrate` holds a PostgreSQL advisory lock while it
works, so pool processes starting together migrate once, and it refuses a database that holds a
version this code does not know (newer software has migrated it). A migration file therefore must
not contain statements PostgreSQL refuses inside a transaction (``CREATE INDEX CONCURRENTLY``,
``VACUUM``); it must not contain ``BEGIN``/``COMMIT`` either.

``shares`` is partitioned by day (UTC) on ``created``: partitions ``shares_YYYYMMDD`` are made ahead
of time by `ensure_share_partitions` (at start-up and then every few hours) and dropped whole by
`drop_share_partitions_before`; rows are never deleted one by one. Rows outside every daily partition
land in ``shares_default``. When a daily partition is made while the default partition holds rows
of its day, those rows move into the new partition in the same transaction (PostgreSQL would
otherwise refuse to create it), so nothing is lost and the default partition stays small.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)

#: The key of the session-level advisory lock `migrate` holds ("quarry" in ASCII).
MIGRATION_LOCK_KEY = 0x717561727279
MIGRATION_FILE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
_NUMBERED_FILE = re.compile(r"^\d+_.*\.sql$")  # meant as a migration: must match MIGRATION_FILE

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

SHARES_TABLE = "shares"
DEFAULT_SHARE_PARTITION = "shares_default"
_DAILY_PARTITION = re.compile(r"^shares_(?P<day>\d{8})$")

Connectable = str | asyncpg.Pool | asyncpg.Connection


class SchemaError(RuntimeError):
    """The database schema cannot be brought to (or does not match) what this code expects."""


# -- connections -------------------------------------------------------------------------------------


async def connect_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    statement_cache_size: int = 256,
    max_inactive_connection_lifetime: float = 300.0,
    server_settings: dict[str, str] | None = None,
    **kwargs: Any,
) -> asyncpg.Pool:
    """An asyncpg pool for the pool's database.

    Every statement has `command_timeout` seconds unless a call says otherwise; sessions name
    themselves ``quarry`` (``pg_stat_activity.application_name``) and work in UTC. Behind PgBouncer
    in transaction mode pass ``statement_cache_size=0``. Creating the pool opens `min_size`
    connections, so a wrong DSN or a server that is down fails here.
    """
    settings = {"application_name": "quarry", "timezone": "UTC", **(server_settings or {})}
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        timeout=connect_timeout,
        statement_cache_size=statement_cache_size,
        max_inactive_connection_lifetime=max_inactive_connection_lifetime,
        server_settings=settings,
        **kwargs,
    )


@asynccontextmanager
async def _connection(target: Connectable) -> AsyncIterator[asyncpg.Connection]:
    """A connection from a DSN (opened and closed here), a pool (acquired and released) or as given."""
    if isinstance(target, str):
        connection = await asyncpg.connect(target, server_settings={"application_name": "quarry"})
        try:
            yield connection
        finally:
            await connection.close()
    elif isinstance(target, asyncpg.Pool):
        async with target.acquire() as connection:
            yield connection
    else:
        yield target


# -- migrations --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def read(self) -> str:
        return self.path.read_text(encoding="utf-8")


def default_sql_dir() -> Path:
    """Where the migrations are: ``pool/sql`` in an installed package, ``sql/`` in a checkout."""
    package_dir = Path(__file__).resolve().parent.parent  # pool/
    installed = package_dir / "sql"
    if installed.is_dir():
        return installed
    checkout = package_dir.parent / "sql"
    if checkout.is_dir() and (package_dir.parent / "pyproject.toml").is_file():
        return checkout
    raise SchemaError(f"no migrations: neither {installed} nor {checkout} exists")


def load_migrations(sql_dir: str | Path | None = None) -> list[Migration]:
    """The migrations in `sql_dir` (default `default_sql_dir`), by version. Other files are ignored,
    but a numbered ``.sql`` file with a malformed name and a version used twice are errors."""
    directory = Path(sql_dir) if sql_dir is not None else default_sql_dir()
    if not directory.is_dir():
        raise SchemaError(f"migration directory {directory} does not exist")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            if _NUMBERED_FILE.match(path.name):
                raise SchemaError(
                    f"{path}: a migration is named NNN_name.sql (three digits, then lower-case letters, "
                    "digits and underscores)"
                )
            continue
        version = int(match["version"])
        if version == 0:
            raise SchemaError(f"{path}: versions start at 001")
        if version in migrations:
            raise SchemaError(f"{path} and {migrations[version].path} both have version {version}")
        migrations[version] = Migration(version, match["name"], path)
    return [migrations[v] for v in sorted(migrations)]


async def applied_migrations(target: Connectable) -> dict[int, str]:
    """version -> name of every migration recorded in the database (empty when there is no table)."""
    async with _connection(target) as connection:
        if await connection.fetchval("SELECT to_regclass('schema_version')") is None:
            return {}
        rows = await connection.fetch("SELECT version, name FROM schema_version ORDER BY version")
        return {row["version"]: row["name"] for row in rows}


async def migrate(
    target: Connectable,
    *,
    sql_dir: str | Path | None = None,
    lock_timeout_s: float = 300.0,
    migration_timeout_s: float = 3600.0,
) -> list[int]:
    """Apply the migrations the database lacks, in order; the versions applied (empty if none).

    `target` is a DSN, an asyncpg pool or a connection. Each file runs in one transaction with its
    ``schema_version`` row: a failing file changes nothing and raises `SchemaError` (files before it
    stay applied). Raises `SchemaError` without changing anything if the database records a version
    this code does not know, or lacks a version below one it has (a gap).
    """
    migrations = load_migrations(sql_dir)
    known = {m.version: m for m in migrations}
    async with _connection(target) as connection:
        await _advisory_lock(connection, lock_timeout_s)
        try:
            await connection.execute(SCHEMA_VERSION_TABLE)
            applied = await applied_migrations(connection)
            unknown = sorted(set(applied) - set(known))
            if unknown:
                newest = max(known, default=0)
                raise SchemaError(
                    f"the database is at schema version {max(applied)} but this quarry knows versions up "
                    f"to {newest} (unknown: {', '.join(map(str, unknown))}): newer software has migrated "
                    "it. Run that version, or point this one at another database."
                )
            for version, name in applied.items():
                if known[version].name != name:
                    logger.warning(
                        "migration %03d is recorded as %r but the file is %s",
                        version, name, known[version].path,
                    )
            missing = [m for m in migrations if m.version not in applied]
            if missing and applied and missing[0].version < max(applied):
                raise SchemaError(
                    f"the database has migration {max(applied)} but not {missing[0].version} "
                    f"({missing[0].path.name}); migrations must be applied in order"
                )
            done: list[int] = []
            for migration in missing:
                await _apply(connection, migration, migration_timeout_s)
                done.append(migration.version)
            return done
        finally:
            await _advisory_unlock(connection)


async def _advisory_lock(connection: asyncpg.Connection, timeout_s: float) -> None:
    if await connection.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
        return
    logger.info("another process is migrating the database; waiting for it")
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=timeout_s)
    except TimeoutError:
        raise SchemaError(
            f"another process has held the migration lock (advisory lock {MIGRATION_LOCK_KEY}) for over "
            f"{timeout_s:g}s"
        ) from None


async def _advisory_unlock(connection: asyncpg.Connection) -> None:
    if connection.is_closed():
        return  # the lock went with the session
    try:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
        logger.warning("could not release the migration lock (it goes with the session): %s", error)


async def _apply(connection: asyncpg.Connection, migration: Migration, timeout_s: float) -> None:
    sql = migration.read()
    began = time.monotonic()
    try:
        async with connection.transaction():
            await connection.execute(sql, timeout=timeout_s)  # no arguments: many statements allowed
            await connection.execute(
                "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    except TimeoutError:
        raise SchemaError(
            f"migration {migration.path.name} ran over {timeout_s:g}s and was rolled back"
        ) from None
    except asyncpg.PostgresError as error:
        detail = f"{type(error).__name__}: {error}"
        if getattr(error, "position", None):
            line = sql.count("\n", 0, int(error.position) - 1) + 1
            detail += f" (line {line})"
        raise SchemaError(
            f"migration {migration.path.name} failed and was rolled back: {detail}"
        ) from error
    logger.info("applied migration %s in %.2fs", migration.path.name, time.monotonic() - began)


# -- share partitions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharePartition:
    name: str
    day: date  # holds shares created from this day 00:00 UTC to the next


def share_partition_name(day: date) -> str:
    return f"shares_{day:%Y%m%d}"


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _timestamp_literal(moment: datetime) -> str:
    return "'" + moment.isoformat() + "'"  # from a date: digits, '-', ':', '+' and 'T' only


async def database_today(connection: asyncpg.Connection) -> date:
    """Today (UTC) by the database's clock: the clock every process shares."""
    return await connection.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")


async def share_partitions(target: Connectable) -> list[SharePartition]:
    """The daily partitions attached to ``shares``, oldest first (not the default partition)."""
    async with _connection(target) as connection:
        rows = await connection.fetch(
            """
            SELECT child.relname
            FROM pg_inherits
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE pg_inherits.inhparent = $1::regclass
            """,
            SHARES_TABLE,
        )
    partitions = []
    for row in rows:
        match = _DAILY_PARTITION.match(row["relname"])
        if match:
            day = datetime.strptime(match["day"], "%Y%m%d").date()
            partitions.append(SharePartition(row["relname"], day))
    return sorted(partitions, key=lambda p: p.day)


async def ensure_share_partitions(
    target: Connectable,
    *,
    days_ahead: int = 2,
    today: date | None = None,
    lock_timeout_s: float = 10.0,
) -> list[str]:
    """Make sure the partitions for today .. today + `days_ahead` (UTC, by the database's clock
    unless `today` is given) exist; the names of those created now.

    Idempotent and safe when several processes run it at once. One transaction per partition; a
    lock that cannot be had within `lock_timeout_s` raises ``asyncpg.LockNotAvailableError`` (call
    again later: partitions are made days ahead).
    """
    if days_ahead < 0:
        raise ValueError("days_ahead must be >= 0")
    async with _connection(target) as connection:
        first = today if today is not None else await database_today(connection)
        created = []
        for offset in range(days_ahead + 1):
            day = first + timedelta(days=offset)
            if await create_share_partition(connection, day, lock_timeout_s=lock_timeout_s):
                created.append(share_partition_name(day))
        return created


async def create_share_partition(
    target: Connectable, day: date, *, lock_timeout_s: float = 10.0
) -> bool:
    """Create and attach the partition of `day`; False if it is already there.

    Rows of that day already in the default partition move into the new one, in the same
    transaction. Locks: SHARE UPDATE EXCLUSIVE on ``shares`` itself (readers and writers of other
    days go on; two processes doing this queue up) and ACCESS EXCLUSIVE on the default partition,
    which PostgreSQL needs anyway to check it. A writer whose row was headed for the default
    partition but belongs to the new one gets an error once this commits, and should retry.
    """
    name = share_partition_name(day)
    start, end = _day_bounds(day)
    low, high = _timestamp_literal(start), _timestamp_literal(end)
    async with _connection(target) as connection:
        if await _is_attached(connection, name):
            return False
        try:
            async with connection.transaction():
                await connection.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_s * 1000)}")
                await connection.execute(f"LOCK TABLE ONLY {SHARES_TABLE} IN SHARE UPDATE EXCLUSIVE MODE")
                if await _is_attached(connection, name):
                    return False  # another process made it while we waited for the lock
                await connection.execute(f"LOCK TABLE {DEFAULT_SHARE_PARTITION} IN ACCESS EXCLUSIVE MODE")
                columns = ", ".join(await _share_columns(connection))
                # A plain table first, filled with the day's rows from the default partition, then
                # attached: the CHECK constraint lets ATTACH skip scanning the new table.
                await connection.execute(
                    f"""
                    CREATE TABLE {name} (LIKE {SHARES_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
                    ALTER TABLE {name} ADD CONSTRAINT {name}_day
                        CHECK (created IS NOT NULL AND created >= {low} AND created < {high});
                    """
                )
                moved = await connection.fetchval(
                    f"""
                    WITH moved AS (
                        DELETE FROM {DEFAULT_SHARE_PARTITION}
                        WHERE created >= {low} AND created < {high}
                        RETURNING {columns}
                    ), inserted AS (
                        INSERT INTO {name} ({columns}) SELECT {columns} FROM moved RETURNING 1
                    )
                    SELECT count(*) FROM inserted
                    """
                )
                await connection.execute(
                    f"""
                    ALTER TABLE {SHARES_TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high});
                    ALTER TABLE {name} DROP CONSTRAINT {name}_day;
                    """
                )
        except asyncpg.DuplicateTableError:
            # Someone made a table of that name without taking our lock.
            if await _is_attached(connection, name):
                return False
            raise SchemaError(f"a table {name} exists but is not a partition of {SHARES_TABLE}") from None
        if moved:
            logger.info(
                "created share partition %s, moving %d rows from %s", name, moved, DEFAULT_SHARE_PARTITION
            )
        else:
            logger.info("created share partition %s", name)
        return True


async def drop_share_partitions_before(
    target: Connectable, day: date, *, lock_timeout_s: float = 10.0
) -> list[str]:
    """Drop (whole) every daily partition of a day before `day`; the names dropped, oldest first.

    Rows are never deleted one by one, and the default partition is left alone. `day` may not be
    after today (UTC, the database's clock): the partitions of today and later are never dropped.
    """
    async with _connection(target) as connection:
        today = await database_today(connection)
        if day > today:
            raise ValueError(f"refusing to drop share partitions of today ({today}) or later (before {day})")
        old = [p for p in await share_partitions(connection) if p.day < day]
        if not old:
            return []
        async with connection.transaction():
            await connection.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_s * 1000)}")
            # Parent first, as writers lock it: dropping a partition takes ACCESS EXCLUSIVE on both.
            await connection.execute(f"LOCK TABLE ONLY {SHARES_TABLE} IN ACCESS EXCLUSIVE MODE")
            still_there = {p.name for p in await share_partitions(connection)}
            dropped = [p.name for p in old if p.name in still_there]
            for name in dropped:
                await connection.execute(f"DROP TABLE {name}")
    if dropped:
        logger.info("dropped share partitions %s", ", ".join(dropped))
    return dropped


async def _is_attached(connection: asyncpg.Connection, name: str) -> bool:
    return bool(
        await connection.fetchval(
            """
            SELECT EXISTS (
                SELECT 1 FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid
                WHERE pg_inherits.inhparent = $1::regclass AND child.relname = $2
            )
            """,
            SHARES_TABLE,
            name,
        )
    )


async def _share_columns(connection: asyncpg.Connection) -> list[str]:
    rows = await connection.fetch(
        """
        SELECT attname FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum
        """,
        SHARES_TABLE,
    )
    return [_quote(row["attname"]) for row in rows]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
