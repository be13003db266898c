"""The demo miner's command line (pool/devtools/miner/cli.py): URLs, a whole run on the recorded
cpuminer exchange, giving up on a dead port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from fake_pool import fake_pool, load_exchange, replay

from pool.devtools.miner.cli import main, parse_stratum_url


def test_parse_stratum_url() -> None:
    assert parse_stratum_url("stratum+tcp://pool.example:3333") == ("pool.example", 3333)
    assert parse_stratum_url("127.0.0.1:3334") == ("127.0.0.1", 3334)
    assert parse_stratum_url("stratum+tcp://[::1]:3335") == ("::1", 3335)
    for bad in [
        "stratum+ssl://pool.example:3333",
        "http://pool.example:3333",
        "pool.example",
        "stratum+tcp://h:99999",
    ]:
        with pytest.raises(ValueError):
            parse_stratum_url(bad)


def test_cli_main_runs_the_recorded_exchange(capsys: pytest.CaptureFixture[str]) -> None:
    """``pool miner`` entry point end to end, with the fake pool in another thread and event loop."""
    entries = load_exchange()
    user = json.loads(entries[2]["line"])["params"][0]
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    ready: list[int] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def serve() -> None:
        async def body() -> None:
            async with fake_pool(lambda peer: replay(entries, seen, peer)) as (port, errors):
                ready.append(port)
                while not stop.is_set():
                    await asyncio.sleep(0.02)
                failures.extend(errors)

        asyncio.run(body())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        code = main(
            [
                "--url",
                f"stratum+tcp://127.0.0.1:{ready[0]}",
                "--user",
                user,
                "--pass",
                "x",
                "--algorithm",
                "scrypt",
                "--max-shares",
                "1",
                "--no-version-rolling",
                "--duration",
                "60",
            ]
        )
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["accepted"] == 1 and summary["submitted"] == 1
    assert seen[-1][1]["params"] == seen[-1][0]["params"]


def test_cli_main_gives_up_on_a_dead_port(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["--url", f"stratum+tcp://127.0.0.1:{port}", "--user", "u", "--max-reconnects", "0"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["gave_up"] is True


def test_cli_rejects_tls_urls() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--url", "stratum+ssl://pool.example:3333", "--user", "u"])
    assert exc.value.code == 2
