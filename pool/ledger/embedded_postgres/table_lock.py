"""`TableLock` (what `PgServer.lock_table` returns): a lock held on a table, ``shares`` usually, so that
the tests can hold the ledger's writes back."""

from __future__ import annotations

import re
from types import TracebackType
from typing import Any, Self

from pool.ledger.embedded_postgres.prerequisites import PgServerError

#: The lock modes `TableLock` accepts (PostgreSQL's LOCK TABLE modes).
LOCK_MODES = frozenset({
    "ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
    "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE",
})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class TableLock:
    """Holds ``LOCK TABLE <table> IN <mode> MODE`` in a connection and transaction of its own until
    released, so that everything else touching the table waits: PostgreSQL made slow on purpose.

        async with server.lock_table("shares"):
            ...                     # inserts into shares block here
        # released: they go through

    or ``lock = await server.lock_table("shares").acquire()`` ... ``await lock.release()``.
    """

    def __init__(self, dsn: str, table: str, *, mode: str = "ACCESS EXCLUSIVE") -> None:
        if not _IDENTIFIER.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        mode = mode.upper()
        if mode not in LOCK_MODES:
            raise ValueError(f"unknown lock mode {mode!r}; one of {sorted(LOCK_MODES)}")
        self.dsn = dsn
        self.table = table
        self.mode = mode
        self._connection: Any = None
        self._transaction: Any = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    async def acquire(self, timeout: float = 30.0) -> Self:
        import asyncpg

        if self._connection is not None:
            raise PgServerError("lock already held")
        connection = await asyncpg.connect(self.dsn, timeout=timeout)
        try:
            transaction = connection.transaction()
            await transaction.start()
            await connection.execute(f"LOCK TABLE {self.table} IN {self.mode} MODE", timeout=timeout)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._transaction = connection, transaction
        return self

    async def release(self) -> None:
        """Roll back (releasing the lock) and close the connection. Idempotent; survives a server that
        went away meanwhile."""
        connection, self._connection = self._connection, None
        transaction, self._transaction = self._transaction, None
        if connection is None:
            return
        try:
            await transaction.rollback()
        except Exception:  # noqa: BLE001 - the connection may be gone; closing it frees the lock anyway
            pass
        finally:
            try:
                await connection.close(timeout=5)
            except Exception:  # noqa: BLE001
                connection.terminate()

    async def __aenter__(self) -> Self:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()
