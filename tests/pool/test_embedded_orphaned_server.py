"""`pool run` with the embedded PostgreSQL, killed with SIGKILL: its postmaster (in its own session)
outlives it.  Restarted on the same data directory, the pool stops that server and starts its own,
with every share stored before the kill; a second pool on a live pool's data directory still refuses
(regtest litecoind, real `pool run` processes)."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
from pool_process import postmaster_pid, start_pool, wait_for_port

from pool.devtools.miner import run_miner
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
[work]
poll_interval_s = 0.1
[stratum]
[[stratum.ports]]
port = {port}
host = "127.0.0.1"
difficulty = 0.01
min_difficulty = 0.01
vardiff = false
[database]
flush_interval_s = 0.2
[api]
enabled = false
metrics_listen = ""
"""


async def stored_shares(data_dir: Path) -> int:
    dsn = running_server_dsn(data_dir / "postgres")
    assert dsn is not None
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval("SELECT count(*) FROM shares")
    finally:
        await connection.close()


async def mine_and_store(port: int, address: str, data_dir: Path, before: int) -> int:
    stats = await run_miner("127.0.0.1", port, f"{address}.rig", algorithm="scrypt", max_shares=3,
                            max_seconds=30, duty_cycle=0.5, chunk_seconds=0.05)
    assert stats.accepted >= 1, stats
    for _ in range(50):   # the flush
        stored = await stored_shares(data_dir)
        if stored > before:
            return stored
        await asyncio.sleep(0.1)
    raise AssertionError("no share was stored")


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_a_killed_pools_server_is_replaced_and_a_live_pools_is_left_alone(tmp_path):
    net = RegtestNetwork()
    await asyncio.to_thread(net.start)
    processes: list[subprocess.Popen] = []
    data_dir = tmp_path / "data"
    try:
        await asyncio.to_thread(net.generate, 101)
        port, second_port = free_loopback_port(), free_loopback_port()
        config, second_config = tmp_path / "pool.toml", tmp_path / "second.toml"
        settings = dict(address=net.mining_address, data_dir=data_dir, daemon=net.rpc_url(0))
        config.write_text(CONFIG.format(port=port, **settings))
        second_config.write_text(CONFIG.format(port=second_port, **settings))

        first = start_pool(config, tmp_path / "pool.log")
        processes.append(first)
        await asyncio.to_thread(wait_for_port, port, first)
        before_kill = await mine_and_store(port, net.mining_address, data_dir, 0)
        server_pid = postmaster_pid(data_dir)
        assert server_pid is not None

        # A second pool on the live pool's data directory refuses and leaves its server alone.
        second = subprocess.run([sys.executable, "-m", "pool.cli", "run", "-c", str(second_config)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert "another pool run uses the data directory" in second.stdout + second.stderr
        assert first.poll() is None and postmaster_pid(data_dir) == server_pid and alive(server_pid)

        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 30)
        assert alive(server_pid), "the server died with the pool: nothing to recover from"

        restarted = start_pool(config, tmp_path / "pool.log")
        processes.append(restarted)
        await asyncio.to_thread(wait_for_port, port, restarted)
        assert not alive(server_pid)
        new_pid = postmaster_pid(data_dir)
        assert new_pid is not None and new_pid != server_pid
        assert await stored_shares(data_dir) >= before_kill
        after = await mine_and_store(port, net.mining_address, data_dir, before_kill)
        assert after > before_kill
        assert "is still running from a pool that died" in (tmp_path / "pool.log").read_text()

        restarted.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(restarted.wait, 60) == 0
        assert postmaster_pid(data_dir) is None
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        pid = postmaster_pid(data_dir)
        if pid is not None and alive(pid):
            subprocess.run(["kill", "-INT", str(pid)], check=False)
        await asyncio.to_thread(net.stop)
