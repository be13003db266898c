import os

import pytest

from share_validator import hashing
from share_validator.bitcoin import job


def pytest_report_header(config):
    return f"hashing backends: {sorted(hashing.available_backends())}; in force: {hashing.describe()}"


def _backends() -> list[str]:
    names = sorted(hashing.available_backends())
    if "native" not in names and os.environ.get(hashing.BACKEND_ENV) != "python":
        # The native module must be there unless the run asked for the hashlib twin only.
        hashing.load_backend("native")
    return names


@pytest.fixture(params=_backends())
def backend(request):
    """Each hashing backend module in turn (native, python)."""
    return hashing.available_backends()[request.param]


@pytest.fixture(params=_backends())
def use_backend(request, monkeypatch):
    """Run the test with the whole pure core switched to one hashing backend."""
    module = hashing.available_backends()[request.param]
    for name in ("sha256", "sha256d", "scrypt", "scrypt_batch", "share_hash", "JobHasher", "describe"):
        monkeypatch.setattr(hashing, name, getattr(module, name))
    monkeypatch.setattr(job, "sha256d", module.sha256d)
    return module


# -- a real PostgreSQL, shared by the tests that need one ------------------------------------------

@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the whole run (started in a temporary directory, fsync off)."""
    from pool.ledger.embedded_postgres import PgServer

    with PgServer(durable=False) as server:
        yield server


@pytest.fixture
async def dsn(pg_server):
    """A fresh database of its own, migrated, with today's share partitions."""
    import asyncio
    import secrets

    from pool.ledger.database import ensure_share_partitions, migrate

    dsn = await asyncio.to_thread(pg_server.create_database, "t_" + secrets.token_hex(6))
    await migrate(dsn)
    await ensure_share_partitions(dsn)
    return dsn


@pytest.fixture
async def db(dsn):
    """A connection pool to that database."""
    from pool.ledger.database import connect_pool

    pool = await connect_pool(dsn, command_timeout=10)
    yield pool
    await pool.close()
