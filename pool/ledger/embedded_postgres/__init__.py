"""A real PostgreSQL server in a directory of its own: the pool's embedded default, and the database tests'.

``pool run`` and ``pool devnet`` without a DSN use one of these; so do the database tests.

    with PgServer() as server:            # fresh temporary directory, removed on stop
        dsn = server.dsn                   # postgresql://quarry:<password>@127.0.0.1:<port>/quarry
        server.pause()                     # fast shutdown; data and port are kept ...
        server.resume()                    # ... and the server comes back on the same port

    async with server.lock_table("shares"):   # makes the shares table "slow": writers wait
        ...

- `prerequisites`: what the server needs from the machine: the binaries (or how to install them), and,
  run as root, an unprivileged user who can reach the data directory; `PgServerError`.
- `server`: `PgServer`, which sets up the cluster, starts, pauses, resumes and stops the postmaster,
  and creates and drops databases.
- `table_lock`: `TableLock`, a table lock held on purpose, to make PostgreSQL slow in tests.
"""

from pool.ledger.embedded_postgres.prerequisites import PgServerError, PostgresNotFound
from pool.ledger.embedded_postgres.server import PgServer

__all__ = ["PgServer", "PgServerError", "PostgresNotFound"]
