"""Property-based fuzzing of the running API (``pool api`` in its own process) from its OpenAPI document:
schemathesis generates valid and invalid requests for every operation; no answer may be a 5xx, every
answer must match the documented status codes, content types and JSON schemas."""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest
from api_seed import ALICE, POOL_ADDRESS, seed

ROOT = Path(__file__).resolve().parents[3]


def write_config(path: Path, dsn: str, **api) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in api.items())
    path.write_text(f"""
[pool]
coin = "litecoin-regtest"
address = "{POOL_ADDRESS}"

[[daemons]]
url = "http://127.0.0.1:1/"

[[stratum.ports]]
port = 3333
difficulty = 16
min_difficulty = 1
max_difficulty = 4096

[database]
dsn = "{dsn}"

[api]
host = "127.0.0.1"
port = 0
rate_limit_per_s = 0
cache_s = 1
{extra}""")
    return path


async def start_api(config: Path) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool.cli", "api", "-c", str(config), stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    async with asyncio.timeout(30):
        while True:
            line = await process.stdout.readline()
            assert line, "pool api exited before it listened"
            if line.startswith(b"API PORT "):
                return process, int(line.split()[-1])


async def stop_api(process: asyncio.subprocess.Process) -> int:
    process.terminate()
    async with asyncio.timeout(15):
        return await process.wait()


async def test_schemathesis_finds_no_server_error(db, dsn, tmp_path):
    await seed(db)
    process, port = await start_api(write_config(tmp_path / "pool.toml", dsn))
    try:
        schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert schemathesis, "schemathesis is a test dependency (pyproject [test])"
        run = await asyncio.create_subprocess_exec(
            schemathesis, "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_schema_conformance",
            "--exclude-path", "/api/v1/pools/{pool}/events",  # an endless stream: tested apart
            "--phases", "examples,coverage,fuzzing", "--max-examples", os.environ.get("FUZZ_EXAMPLES", "60"),
            "--workers", "2", "--request-timeout", "10", "--seed", "20260101", "--no-color",
            "--suppress-health-check", "all",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
        output, _ = await run.communicate()
        text = output.decode(errors="replace")
        assert run.returncode == 0, text[-6000:]
        assert "Server error" not in text
    finally:
        assert await stop_api(process) == 0


async def test_pool_api_serves_a_miner_and_stops_on_sigterm(db, dsn, tmp_path):
    import aiohttp

    await seed(db)
    process, port = await start_api(write_config(tmp_path / "pool.toml", dsn, cors_origins='["*"]'))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/pools/litecoin-regtest/miners/{ALICE}",
                                   headers={"Origin": "https://x.example"}) as response:
                assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
                assert (await response.json())["address"] == ALICE
    finally:
        assert await stop_api(process) == 0


@pytest.mark.parametrize("args, message", [
    ([], b"needs database.dsn"),
])
def test_pool_api_needs_a_database(tmp_path, args, message):
    import subprocess

    config = write_config(tmp_path / "pool.toml", "").read_text().replace('dsn = ""', "")
    (tmp_path / "pool.toml").write_text(config)
    env = {key: value for key, value in os.environ.items() if key != "QUARRY_API_DSN"}
    result = subprocess.run([sys.executable, "-m", "pool.cli", "api", "-c", str(tmp_path / "pool.toml"), *args],
                            capture_output=True, cwd=ROOT, env=env, timeout=60)
    assert result.returncode == 2 and message in result.stderr


def _children(pid: int) -> set[int]:
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            children.add(int(stat.parent.name))
    return children


async def test_api_workers_share_one_port_count_together_and_stop_together(db, dsn, tmp_path):
    """api.workers = 2: two processes answer on one port (SO_REUSEPORT); /metrics in either sums the
    requests of both; a worker killed is started again; SIGTERM ends them all."""
    import signal

    import aiohttp

    await seed(db)
    process, port = await start_api(write_config(tmp_path / "pool.toml", dsn, workers=2))
    url = f"http://127.0.0.1:{port}/api/v1/pools/litecoin-regtest/miners/{ALICE}"
    try:
        workers = _children(process.pid)
        assert len(workers) == 2
        requests = 40
        for _ in range(requests):  # a connection each: the kernel spreads them over both workers
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                assert response.status == 200 and (await response.json())["address"] == ALICE
        route = 'quarry_api_requests_total{route="/api/v1/pools/{pool}/miners/{address}",status="200"}'
        for _ in range(4):  # whichever worker answers, the count is both workers'
            async with aiohttp.ClientSession() as session, session.get(
                    f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            line = next(line for line in text.splitlines() if line.startswith(route))
            assert float(line.split()[-1]) == requests
        os.kill(min(workers), signal.SIGKILL)
        async with asyncio.timeout(20):
            while len(_children(process.pid) - workers) < 1 or len(_children(process.pid)) < 2:
                await asyncio.sleep(0.2)
            while True:  # the new worker answers too
                try:
                    async with aiohttp.ClientSession() as session, session.get(url) as response:
                        assert response.status == 200
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
        everyone = _children(process.pid)
    finally:
        assert await stop_api(process) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in everyone)
