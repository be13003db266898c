"""`pool migrate` against a real PostgreSQL: applies what is missing, refuses an unknown version."""
import asyncio
import secrets
import subprocess
import sys

import asyncpg

CONFIG = """
[pool]
coin = "litecoin"
address = "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9"
data_dir = "{data_dir}"
[[daemons]]
url = "http://127.0.0.1:9332/"
[stratum]
[[stratum.ports]]
port = 3333
[database]
dsn = "{dsn}"
"""


def run_migrate(config_path):
    return subprocess.run([sys.executable, "-m", "pool.cli", "migrate", "-c", str(config_path)],
                          capture_output=True, text=True, timeout=60)


async def test_migrate_command(pg_server, tmp_path):
    dsn = await asyncio.to_thread(pg_server.create_database, "cli_" + secrets.token_hex(6))
    path = tmp_path / "pool.toml"
    path.write_text(CONFIG.format(dsn=dsn, data_dir=tmp_path))
    first = await asyncio.to_thread(run_migrate, path)
    assert first.returncode == 0 and "database schema at version" in first.stdout, first.stderr
    again = await asyncio.to_thread(run_migrate, path)
    assert again.returncode == 0
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO schema_version (version, name) VALUES (999, 'from the future')")
    await conn.close()
    refused = await asyncio.to_thread(run_migrate, path)
    assert refused.returncode == 2 and "999" in refused.stderr
