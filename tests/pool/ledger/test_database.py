"""Migrations, the connection pool and share partitions against a real PostgreSQL server.

The server is started by pool/ledger/embedded_postgres/ in a temporary directory, and every test gets a
database of its own on it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from pool.ledger import database
from pool.ledger.database import (
    SchemaError,
    connect_pool,
    create_share_partition,
    database_today,
    drop_share_partitions_before,
    ensure_share_partitions,
    load_migrations,
    migrate,
    share_partitions,
)
from pool.ledger.embedded_postgres import PgServer, PgServerError, PostgresNotFound
from pool.ledger.embedded_postgres.prerequisites import find_postgres_bindir

REPO_SQL = Path(__file__).resolve().parents[3] / "sql"
SCHEMA_TABLES = {"schema_version", "shares", "shares_default", "blocks", "worker_minutes", "rounds"}


@pytest.fixture(scope="module")
def server() -> Iterator[PgServer]:
    with PgServer(durable=False) as server:
        print(f"\nPostgreSQL started in {server.start_seconds:.2f}s")
        yield server


@pytest.fixture
def dsn(server: PgServer) -> Iterator[str]:
    """A fresh, empty database of its own."""
    name = "test_" + secrets.token_hex(6)
    yield server.create_database(name)
    if server.running:
        server.drop_database(name)


@pytest.fixture
async def connection(dsn: str) -> asyncpg.Connection:
    """A connection to a database that `migrate` has brought up to date."""
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


def share_row(share_id: str, created: datetime) -> tuple:
    return (share_id, created, "ltc", "addr", "rig1", 1.0, 2.0, 3.0, 100, 625_000_000, 1, "127.0.0.1", False)


async def insert_shares(connection: asyncpg.Connection, rows: list[tuple]) -> None:
    await connection.copy_records_to_table("shares", records=rows)


async def rows_by_partition(connection: asyncpg.Connection) -> dict[str, list[str]]:
    rows = await connection.fetch(
        "SELECT tableoid::regclass::text AS part, share_id FROM shares ORDER BY share_id"
    )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["part"], []).append(row["share_id"])
    return found


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


# -- migration files ----------------------------------------------------------------------------------


def test_the_repository_migrations_are_found() -> None:
    migrations = load_migrations()
    assert migrations[0].version == 1 and migrations[0].name == "initial"
    assert migrations[0].path == REPO_SQL / "001_initial.sql"
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


def test_migration_file_names(tmp_path: Path) -> None:
    write_migrations(tmp_path, {"001_a.sql": "", "002_b.sql": "", "README.md": "", "notes.sql": ""})
    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [(1, "a"), (2, "b")]
    (tmp_path / "3_c.sql").write_text("")
    with pytest.raises(SchemaError, match="NNN_name.sql"):
        load_migrations(tmp_path)
    (tmp_path / "3_c.sql").unlink()
    (tmp_path / "002_other.sql").write_text("")
    with pytest.raises(SchemaError, match="both have version 2"):
        load_migrations(tmp_path)
    with pytest.raises(SchemaError, match="does not exist"):
        load_migrations(tmp_path / "nowhere")


# -- migrate -------------------------------------------------------------------------------------------


ALL_VERSIONS = [m.version for m in database.load_migrations()]


async def test_migrate_an_empty_database_applies_001_and_records_it(dsn: str) -> None:
    assert await migrate(dsn) == ALL_VERSIONS
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT version, name, applied_at FROM schema_version ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows][0] == (1, "initial")
        assert [r["version"] for r in rows] == ALL_VERSIONS
        assert rows[0]["applied_at"] is not None
        tables = {
            r["tablename"]
            for r in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert SCHEMA_TABLES <= tables
        assert database.applied_migrations and (await database.applied_migrations(connection))[1] == "initial"
    finally:
        await connection.close()


async def test_migrate_twice_applies_nothing(dsn: str) -> None:
    assert await migrate(dsn) == ALL_VERSIONS
    assert await migrate(dsn) == []
    pool = await connect_pool(dsn)
    try:
        assert await migrate(pool) == []  # a pool works as well as a DSN
        assert await pool.fetchval("SELECT count(*) FROM schema_version") == len(ALL_VERSIONS)
    finally:
        await pool.close()


async def test_concurrent_migrations_apply_each_file_once(dsn: str) -> None:
    results = await asyncio.gather(*(migrate(dsn) for _ in range(4)))
    assert sorted(results) == [[], [], [], ALL_VERSIONS]


async def test_concurrent_migrations_wait_for_the_one_migrating(dsn: str, tmp_path: Path) -> None:
    """A slow migration: the other processes wait on the advisory lock, then find nothing to do."""
    sql_dir = write_migrations(tmp_path, {
        "001_slow.sql": "CREATE TABLE counted (n int); SELECT pg_sleep(0.5); INSERT INTO counted VALUES (1);",
    })
    began = time.monotonic()
    results = await asyncio.gather(*(migrate(dsn, sql_dir=sql_dir) for _ in range(3)))
    assert time.monotonic() - began >= 0.5
    assert sorted(results) == [[], [], [1]]
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM counted") == 1
    finally:
        await connection.close()


async def test_a_database_migrated_by_newer_software_is_refused(dsn: str) -> None:
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("INSERT INTO schema_version (version, name) VALUES (999, 'from_the_future')")
        with pytest.raises(SchemaError, match=r"schema version 999 .*newer software") as caught:
            await migrate(dsn)
        print(f"\nrefused with: {caught.value}")
        assert await connection.fetchval("SELECT count(*) FROM schema_version") == len(ALL_VERSIONS) + 1
    finally:
        await connection.close()


async def test_a_failing_migration_rolls_back_completely(dsn: str, tmp_path: Path) -> None:
    sql_dir = write_migrations(tmp_path, {
        "001_first.sql": "CREATE TABLE first (n int);",
        "002_broken.sql": (
            "CREATE TABLE second (n int);\n"
            "INSERT INTO second VALUES (1);\n"
            "ALTER TABLE first ADD COLUMN extra text;\n"
            "INSERT INTO no_such_table VALUES (1);\n"
        ),
    })
    with pytest.raises(
        SchemaError,
        match=r"002_broken\.sql failed and was rolled back.*no_such_table.*line 4",
    ):
        await migrate(dsn, sql_dir=sql_dir)
    connection = await asyncpg.connect(dsn)
    try:
        assert await database.applied_migrations(connection) == {1: "first"}
        assert await connection.fetchval("SELECT to_regclass('second')") is None
        columns = await connection.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'first'::regclass AND attnum > 0"
        )
        assert [c["attname"] for c in columns] == ["n"]  # the ALTER went with the rollback
        # Fixed, it applies; the lock was released after the failure.
        (sql_dir / "002_broken.sql").write_text("CREATE TABLE second (n int);")
        assert await migrate(dsn, sql_dir=sql_dir) == [2]
    finally:
        await connection.close()


async def test_a_missing_older_migration_is_refused(dsn: str, tmp_path: Path) -> None:
    sql_dir = write_migrations(
        tmp_path, {"001_a.sql": "CREATE TABLE a ();", "003_c.sql": "CREATE TABLE c ();"}
    )
    assert await migrate(dsn, sql_dir=sql_dir) == [1, 3]
    (sql_dir / "002_b.sql").write_text("CREATE TABLE b ();")
    with pytest.raises(SchemaError, match="has migration 3 but not 2"):
        await migrate(dsn, sql_dir=sql_dir)


async def test_migrate_keeps_the_lock_free_for_the_next_caller(dsn: str) -> None:
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT pg_try_advisory_lock($1)", database.MIGRATION_LOCK_KEY)
    finally:
        await connection.close()


# -- connection pool ---------------------------------------------------------------------------------


async def test_connect_pool_settings(dsn: str) -> None:
    pool = await connect_pool(dsn, command_timeout=0.5)
    try:
        assert await pool.fetchval("SHOW application_name") == "quarry"
        assert await pool.fetchval("SHOW timezone") == "UTC"
        with pytest.raises(TimeoutError):
            await pool.execute("SELECT pg_sleep(5)")
        assert await pool.fetchval("SELECT 1") == 1  # the pool survives a timed-out statement
    finally:
        await pool.close()


# -- share partitions --------------------------------------------------------------------------------


async def test_partitions_for_today_and_the_days_ahead(connection: asyncpg.Connection) -> None:
    today = await database_today(connection)
    created = await ensure_share_partitions(connection)
    expected = [f"shares_{today + timedelta(days=n):%Y%m%d}" for n in range(3)]
    assert created == expected
    assert [p.name for p in await share_partitions(connection)] == expected
    assert await ensure_share_partitions(connection) == []  # idempotent
    day3 = today + timedelta(days=3)
    assert await ensure_share_partitions(connection, days_ahead=3) == [f"shares_{day3:%Y%m%d}"]


async def test_concurrent_partition_makers(dsn: str, connection: asyncpg.Connection) -> None:
    """Several processes making the same partitions at once: each made once, nobody fails."""
    pools = [await connect_pool(dsn, min_size=1, max_size=1) for _ in range(4)]
    try:
        results = await asyncio.gather(*(ensure_share_partitions(pool, days_ahead=5) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    made = [name for result in results for name in result]
    assert len(made) == len(set(made)) == 6
    assert len(await share_partitions(connection)) == 6


async def test_rows_go_to_the_partition_of_their_day(connection: asyncpg.Connection) -> None:
    today = await database_today(connection)
    await ensure_share_partitions(connection, days_ahead=1)
    tomorrow = today + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    await insert_shares(connection, [
        share_row("a-today", noon(today)),
        share_row("b-last-microsecond-of-today", midnight - timedelta(microseconds=1)),
        share_row("c-midnight", midnight),
        share_row("d-next-week", noon(today + timedelta(days=7))),
        share_row("e-last-year", noon(today - timedelta(days=365))),
    ])
    assert await rows_by_partition(connection) == {
        f"shares_{today:%Y%m%d}": ["a-today", "b-last-microsecond-of-today"],
        f"shares_{tomorrow:%Y%m%d}": ["c-midnight"],
        "shares_default": ["d-next-week", "e-last-year"],
    }


async def test_a_partition_made_late_takes_its_rows_from_the_default_partition(
    connection: asyncpg.Connection,
) -> None:
    today = await database_today(connection)
    late_day = today + timedelta(days=10)
    other_day = today + timedelta(days=11)
    await insert_shares(connection, [
        share_row("early", datetime(late_day.year, late_day.month, late_day.day, tzinfo=UTC)),
        share_row("late", noon(late_day)),
        share_row("other-day", noon(other_day)),
    ])
    assert set(await rows_by_partition(connection)) == {"shares_default"}
    # What PostgreSQL does to the naive way: the default partition holds rows of that day.
    with pytest.raises(asyncpg.CheckViolationError, match="default partition"):
        await connection.execute(
            f"CREATE TABLE shares_{late_day:%Y%m%d} PARTITION OF shares "
            f"FOR VALUES FROM ('{late_day}T00:00+00') TO ('{late_day + timedelta(days=1)}T00:00+00')"
        )
    assert await create_share_partition(connection, late_day) is True
    assert await rows_by_partition(connection) == {
        f"shares_{late_day:%Y%m%d}": ["early", "late"],
        "shares_default": ["other-day"],
    }
    # The partition is a full one: its primary key refuses a duplicate, new rows route to it.
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_shares(connection, [share_row("late", noon(late_day))])
    await insert_shares(connection, [share_row("new", noon(late_day))])
    assert (await rows_by_partition(connection))[f"shares_{late_day:%Y%m%d}"] == ["early", "late", "new"]
    assert await create_share_partition(connection, late_day) is False


async def test_old_partitions_are_dropped_whole(connection: asyncpg.Connection) -> None:
    today = await database_today(connection)
    await ensure_share_partitions(connection, today=today - timedelta(days=3), days_ahead=5)
    days = [today + timedelta(days=n) for n in range(-3, 3)]
    await insert_shares(connection, [share_row(f"day{n}", noon(day)) for n, day in enumerate(days)])
    await insert_shares(connection, [share_row("ancient", noon(today - timedelta(days=100)))])

    dropped = await drop_share_partitions_before(connection, today - timedelta(days=1))
    assert dropped == [f"shares_{days[0]:%Y%m%d}", f"shares_{days[1]:%Y%m%d}"]
    assert [p.day for p in await share_partitions(connection)] == days[2:]
    remaining = await rows_by_partition(connection)
    kept = sorted(share_id for ids in remaining.values() for share_id in ids)
    assert kept == ["ancient", "day2", "day3", "day4", "day5"]
    assert remaining["shares_default"] == ["ancient"]  # the default partition is left alone
    assert await drop_share_partitions_before(connection, today - timedelta(days=1)) == []
    with pytest.raises(ValueError, match="refusing"):
        await drop_share_partitions_before(connection, today + timedelta(days=1))


# -- the server helper --------------------------------------------------------------------------------


async def test_pause_and_resume_keep_port_and_data(server: PgServer, dsn: str) -> None:
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    await connection.execute("INSERT INTO rounds (pool, work) VALUES ('ltc', 12.5)")
    port = server.port

    await asyncio.to_thread(server.pause)
    assert not server.running
    with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
        await connection.fetchval("SELECT 1")  # the open connection is gone
    with pytest.raises(OSError):
        await asyncpg.connect(dsn, timeout=2)  # nothing listens on the port

    await asyncio.to_thread(server.resume)
    print(f"\nresumed in {server.start_seconds:.3f}s")
    assert server.running and server.port == port
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT work FROM rounds WHERE pool = 'ltc'") == 12.5
    finally:
        await connection.close()


async def test_the_lock_helper_blocks_inserts_until_released(server: PgServer, dsn: str) -> None:
    await migrate(dsn)
    await ensure_share_partitions(dsn)
    database_name = dsn.rsplit("/", 1)[1]
    writer = await asyncpg.connect(dsn)
    try:
        lock = await server.lock_table("shares", database=database_name).acquire()
        insert = asyncio.create_task(insert_shares(writer, [share_row("waits", datetime.now(UTC))]))
        await asyncio.sleep(0.5)
        assert not insert.done(), "the insert should wait for the lock"
        await lock.release()
        await asyncio.wait_for(insert, timeout=5)
        assert await writer.fetchval("SELECT count(*) FROM shares") == 1

        # SHARE mode: readers go on, writers wait.
        reader = await asyncpg.connect(dsn)
        try:
            async with server.lock_table("shares", database=database_name, mode="share"):
                assert await reader.fetchval("SELECT count(*) FROM shares") == 1
                delete = asyncio.create_task(writer.execute("DELETE FROM shares"))
                await asyncio.sleep(0.3)
                assert not delete.done()
            await asyncio.wait_for(delete, timeout=5)
            assert await reader.fetchval("SELECT count(*) FROM shares") == 0
        finally:
            await reader.close()
    finally:
        await writer.close()
    with pytest.raises(ValueError):
        server.lock_table("shares; DROP TABLE shares")
    with pytest.raises(ValueError):
        server.lock_table("shares", mode="EVERYTHING")


def test_start_stop_and_reuse_a_given_directory() -> None:
    parent = Path(os.environ.get("TMPDIR", "/tmp")) / f"quarry-pg-test-{secrets.token_hex(4)}"
    parent.mkdir(mode=0o755)
    base_dir = parent / "pg"
    try:
        server = PgServer(base_dir, durable=False)
        with server:
            pid = server.process.pid
            server.create_database("kept")
            first_dsn = server.dsn
        assert not server.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        server.stop()  # idempotent
        assert (base_dir / "data" / "PG_VERSION").exists()  # a given directory is kept
        again = PgServer(base_dir, durable=False)
        with again:
            async def databases() -> set[str]:
                connection = await asyncpg.connect(again.dsn)
                try:
                    return {r["datname"] for r in await connection.fetch("SELECT datname FROM pg_database")}
                finally:
                    await connection.close()

            assert {"quarry", "kept"} <= asyncio.run(databases())
            assert again.password == first_dsn.split(":")[2].split("@")[0]
    finally:
        import shutil

        shutil.rmtree(parent, ignore_errors=True)


def test_a_failed_start_leaves_nothing_behind() -> None:
    server = PgServer(durable=False, settings={"no_such_setting": "1"}, startup_timeout=20)
    with pytest.raises(PgServerError, match="postgres exited with code") as caught:
        server.start()
    print(f"\nstart-up failure reported as: {str(caught.value).splitlines()[0]}")
    assert server.base_dir is not None and not server.base_dir.exists()
    assert server.process is None


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
def test_as_root_a_directory_the_server_user_cannot_reach_is_named(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(PgServerError, match="not searchable"):
        PgServer(private / "pg").start()


def test_missing_binaries_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(PostgresNotFound, match=r"apt-get install -y postgresql"):
        find_postgres_bindir(tmp_path)
    with pytest.raises(PostgresNotFound):
        PgServer(bindir=tmp_path).start()
