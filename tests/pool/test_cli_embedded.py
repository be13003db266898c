"""One-off commands with the embedded PostgreSQL (no database.dsn), next to a real running `pool run`.

PostgreSQL allows one server per data directory: `pool check-ledger`, `pool verify-block` and the
other one-off commands must use the server the running pool started, not start a second one in the
same directory; with no pool running they start and stop one of their own."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import pytest
from pool_process import postmaster_pid, wait_for_port

from pool.devtools.regtest import RegtestNetwork
from pool.ledger.running_postgres import running_server_dsn
from pool.localnet import free_loopback_port

CONFIG = """
[pool]
coin = "litecoin-regtest"
address = "{address}"
data_dir = "{data_dir}"
[[daemons]]
url = "{daemon}"
[stratum]
[[stratum.ports]]
port = {port}
host = "127.0.0.1"
[api]
enabled = false
metrics_listen = ""
"""


def pool_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pool.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def network():
    with RegtestNetwork(node_count=1) as net:
        net.generate(101)
        yield net


async def test_read_only_commands_use_the_running_pools_embedded_server(network, tmp_path):
    data_dir = tmp_path / "data"
    port = free_loopback_port()
    config = tmp_path / "pool.toml"
    config.write_text(CONFIG.format(address=network.mining_address, data_dir=data_dir,
                                    daemon=network.rpc_url(0), port=port))
    log = open(tmp_path / "pool.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "pool.cli", "run", "-c", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        await asyncio.to_thread(wait_for_port, port, process)
        server_pid = postmaster_pid(data_dir)
        assert server_pid is not None
        dsn = running_server_dsn(data_dir / "postgres")
        assert dsn is not None
        # Something only the running server's database holds: a credited block (so verify-block has
        # a report to find) whose journal does not add up, which check-ledger must report.
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(
                "INSERT INTO blocks (pool, height, hash, status, reward, finder_address, credited) "
                "VALUES ('litecoin-regtest', 7, repeat('ab', 32), 'confirmed', 5000, 'x', true)")
        finally:
            await connection.close()

        checked = await asyncio.to_thread(pool_cli, "check-ledger", "-c", str(config), "--no-wallet")
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert f"block {'ab' * 32} at 7 is credited but has no payout report" in checked.stdout
        verified = await asyncio.to_thread(pool_cli, "verify-block", "-c", str(config), "7")
        assert verified.returncode == 1 and "has no stored report" in verified.stdout, verified.stderr
        migrated = await asyncio.to_thread(pool_cli, "migrate", "-c", str(config))
        assert migrated.returncode == 0 and "database schema at version" in migrated.stdout, migrated.stderr
        # The pool's server is the one that answered, still running, and no second one was started.
        assert postmaster_pid(data_dir) == server_pid and process.poll() is None
        assert "could not" not in checked.stderr and "lock file" not in checked.stderr

        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert postmaster_pid(data_dir) is None   # the pool stopped its server

    # No pool running: the command starts the embedded server, answers from the same data, stops it.
    checked = await asyncio.to_thread(pool_cli, "check-ledger", "-c", str(config), "--no-wallet")
    assert checked.returncode == 1 and "at 7 is credited but has no payout report" in checked.stdout, (
        checked.stdout + checked.stderr)
    assert postmaster_pid(data_dir) is None


def test_a_stale_postmaster_pid_is_not_trusted(tmp_path):
    base = tmp_path / "postgres"
    (base / "data").mkdir(parents=True)
    (base / "superuser.password").write_text("secret\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file = base / "data" / "postmaster.pid"
    pid_file.write_text(f"{dead.pid}\n{base}/data\n1\n5432\n\n127.0.0.1\n 1 2\nready   \n")
    assert running_server_dsn(base) is None
    pid_file.write_text(f"{os.getpid()}\n{base}/data\n1\n5432\n\n127.0.0.1\n 1 2\nstarting\n")
    assert running_server_dsn(base) is None
    pid_file.write_text(f"{os.getpid()}\n{base}/data\n1\n5432\n\n127.0.0.1\n 1 2\nready   \n")
    assert running_server_dsn(base) == "postgresql://quarry:secret@127.0.0.1:5432/quarry"
