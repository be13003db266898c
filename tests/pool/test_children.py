"""Child processes: `pool.children.supervise` starts a child again when it exits and stops it when
cancelled; every child ends when its parent dies, however it dies (SIGKILL included), so none keeps
the pool's ports; a pool that finds a port of its own taken says so once and exits non-zero."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from api_seed import POOL_ADDRESS

from pool.children import supervise
from pool.localnet import free_loopback_port

ROOT = Path(__file__).resolve().parents[2]


async def test_a_child_that_exits_is_started_again_and_cancel_stops_it(tmp_path, monkeypatch):
    monkeypatch.setattr("pool.children.FIRST_RETRY_S", 0.05)
    starts = tmp_path / "starts"
    # Each run notes its pid, says it is up, lives 0.2 s the first two times, then until stopped.
    script = ("import os, sys, time; p = sys.argv[1]; open(p, 'a').write(f'{os.getpid()}\\n');"
              "print('UP', flush=True); n = len(open(p).read().split());"
              "time.sleep(0.2 if n < 3 else 3600)")
    lines = []
    task = asyncio.ensure_future(supervise([sys.executable, "-c", script, str(starts)], env=os.environ,
                                           name="test child", on_first_line=lambda line: lines.append(line) or True))
    async with asyncio.timeout(20):
        while not starts.exists() or len(starts.read_text().split()) < 3:
            await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    pids = [int(pid) for pid in starts.read_text().split()]
    assert len(pids) == 3 and lines[:2] == [b"UP\n", b"UP\n"]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # the last one stopped, none left behind


# -- children end with their parent ----------------------------------------------------------------

def descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.update(children)
        frontier.extend(children)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def wait_listening(port: int, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


async def kill_and_wait_free(parent: asyncio.subprocess.Process, port: int) -> tuple[float, set[int]]:
    """SIGKILL the parent; seconds until the port could be bound again, and the descendants still alive."""
    family = descendants(parent.pid)
    assert family, "the parent has its children"
    parent.kill()
    await parent.wait()
    killed = time.monotonic()
    while not port_free(port) and time.monotonic() - killed < 5:
        await asyncio.sleep(0.02)
    freed_after = time.monotonic() - killed
    print(f"\nport {port} free {freed_after:.3f} s after the SIGKILL of {parent.pid}")
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    left = {pid for pid in family if alive(pid)}
    for pid in left:  # no test leaves processes behind, even when it fails
        os.kill(pid, signal.SIGKILL)
    return freed_after, left


SUPERVISOR = """
import asyncio, os, sys
from pool.children import supervise
run = asyncio.run
if sys.argv[1] == "uvloop":
    import uvloop
    run = uvloop.run
run(supervise(sys.argv[2:], env=os.environ, name="child", on_first_line=lambda line: print(line.decode(), end="",
                                                                                               flush=True) or True))
"""

LISTENER = """
import socket, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen()
print(sock.getsockname()[1], flush=True)
time.sleep(3600)
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_supervised_child_ends_when_its_parent_is_killed(loop):
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", SUPERVISOR, loop, sys.executable, "-c",
                                                  LISTENER, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    port = int(await asyncio.wait_for(parent.stdout.readline(), 30))
    freed_after, left = await kill_and_wait_free(parent, port)
    assert freed_after < 1.0 and not left


def write_config(path: Path, *, stratum_port: int, api_port: int, dsn: str = "", api: bool = True,
                 workers: int = 1) -> Path:
    path.write_text(f"""
[pool]
coin = "litecoin-regtest"
address = "{POOL_ADDRESS}"
data_dir = "{path.parent}"

[[daemons]]
url = "http://127.0.0.1:1/"

[[stratum.ports]]
host = "127.0.0.1"
port = {stratum_port}
difficulty = 16
min_difficulty = 1
max_difficulty = 4096

[database]
dsn = "{dsn}"

[api]
enabled = {"true" if api else "false"}
host = "127.0.0.1"
port = {api_port}
workers = {workers}
""")
    return path


API_SUPERVISOR = """
import sys, uvloop
from pool.app import supervise_api
from pool.config import load_config
uvloop.run(supervise_api(load_config(sys.argv[1]), sys.argv[2]))
"""


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_api_ends_with_a_killed_pool_and_frees_its_port(dsn, tmp_path, workers):
    """The API process ``pool run`` starts (and its workers) end when the pool is killed: the port is free."""
    port = free_loopback_port()
    config = write_config(tmp_path / "pool.toml", stratum_port=free_loopback_port(), api_port=port, dsn=dsn,
                          workers=workers)
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", API_SUPERVISOR, str(config), dsn, cwd=ROOT)
    try:
        await wait_listening(port)
        while workers > 1 and len(descendants(parent.pid)) < 1 + workers:
            await asyncio.sleep(0.1)
    except BaseException:
        parent.kill()
        raise
    freed_after, left = await kill_and_wait_free(parent, port)
    assert freed_after < 1.0 and not left


# -- a port taken ------------------------------------------------------------------------------------

@pytest.mark.parametrize("taken", ["stratum", "api"])
async def test_a_pool_on_a_taken_port_says_so_once_and_exits_non_zero(tmp_path, taken):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    other = free_loopback_port()
    config = write_config(tmp_path / "pool.toml", dsn="postgresql://quarry@127.0.0.1:1/quarry",
                          stratum_port=port if taken == "stratum" else other,
                          api_port=port if taken == "api" else other)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool.cli", "run", "-c", str(config), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError("the pool did not exit") from None
    finally:
        holder.close()
    lines = [line for line in (stdout + stderr).decode().splitlines() if line.strip()]
    assert process.returncode not in (0, None)
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines[0]


async def test_an_api_process_on_a_taken_port_is_not_started_again(dsn, tmp_path, capfd):
    """The API process says once that its port is taken; its supervisor (in ``pool run``: the pool)
    stops with `ChildFailed` instead of starting it again and again."""
    from pool.app import supervise_api
    from pool.children import EXIT_PORT_TAKEN, ChildFailed
    from pool.config import load_config

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = load_config(write_config(tmp_path / "pool.toml", stratum_port=free_loopback_port(), api_port=port,
                                      dsn=dsn))
    try:
        with pytest.raises(ChildFailed) as failed:
            async with asyncio.timeout(60):
                await supervise_api(config, dsn)
    finally:
        holder.close()
    assert failed.value.code == EXIT_PORT_TAKEN
    said = [line for line in capfd.readouterr().err.splitlines() if f"127.0.0.1:{port}" in line]
    assert len(said) == 1 and "in use" in said[0], said
