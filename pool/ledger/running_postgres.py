"""The embedded PostgreSQL that a running ``pool run`` started in its data directory.

Without ``database.dsn`` the pool runs PostgreSQL in ``<data_dir>/postgres`` (``pool.ledger.embedded_postgres``), and
PostgreSQL refuses a second server on one data directory.  So a one-off command (``pool
check-ledger``, ``pool verify-block``, ``pool pay``, ``pool migrate``) first looks for the server
already running there and connects to it; it starts one of its own only when none runs.

The server is found by what PostgreSQL itself writes, ``postmaster.pid`` in the data directory
(its PID, its port, and its status, "ready" once it accepts connections), and the superuser
password that ``PgServer`` keeps beside the data.  A ``postmaster.pid`` left by a server that died
is not trusted: its process must be alive and the server must accept a login.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import asyncpg

from pool.ledger.database import connect_pool
from pool.ledger.embedded_postgres import PgServer

logger = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process (the server runs as its own user under root)
    return True


def running_server_dsn(base_dir: str | os.PathLike[str]) -> str | None:
    """The DSN of the PostgreSQL server running in ``base_dir`` (a ``PgServer`` base directory:
    ``data/`` and ``superuser.password``), or None when none runs there."""
    server = PgServer(base_dir)
    server.base_dir = Path(base_dir).resolve()   # the layout of an existing server, not started here
    try:
        lines = (server.data_dir / "postmaster.pid").read_text().splitlines()
        password = server.password_path.read_text().strip()
    except OSError:
        return None
    # postmaster.pid: PID, data directory, start time, port, socket directory, listen address,
    # shared memory key, status.
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    try:
        pid, port = int(lines[0]), int(lines[3])
    except ValueError:
        return None
    if pid <= 0 or not _alive(pid):
        return None
    server.port, server.password = port, password
    return server.dsn


async def connect_running_server(base_dir: str | os.PathLike[str], **options) -> asyncpg.Pool | None:
    """A connection pool to the server running in ``base_dir``, or None when none runs (or it
    does not accept the login)."""
    dsn = running_server_dsn(base_dir)
    if dsn is None:
        return None
    try:
        db = await connect_pool(dsn, min_size=1, max_size=4, **options)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        logger.info("the PostgreSQL server in %s did not accept a login (%s); starting one", base_dir, error)
        return None
    logger.info("using the PostgreSQL server the running pool started in %s", base_dir)
    return db
