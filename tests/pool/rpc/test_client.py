"""DaemonClient against a real two-node litecoind regtest network (no mocks)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from payouts.money import coins_to_satoshis, satoshis_to_coins
from pool.devtools.regtest import RegtestNetwork, free_loopback_ports
from pool.rpc.client import DaemonClient
from pool.rpc.wire import (
    DaemonAuthError,
    DaemonEndpoint,
    DaemonError,
    DaemonTimeout,
    DaemonUnreachable,
    DaemonWarmingUp,
)


@pytest.fixture(scope="module")
def network() -> Iterator[RegtestNetwork]:
    with RegtestNetwork() as net:
        net.generate(101)  # leaves initial block download and matures the first coinbase
        yield net


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    (port,) = free_loopback_ports(1)
    return f"http://nobody:secret-dead-password@127.0.0.1:{port}/"


def quick_retries(**overrides: float) -> dict[str, float]:
    settings = {"retry_initial_delay": 0.05, "retry_max_delay": 0.2, "retry_max_time": 5.0, "max_attempts": 6}
    settings.update(overrides)
    return settings


# -- plain calls -------------------------------------------------------------------------------------


async def test_calls_succeed(network: RegtestNetwork) -> None:
    async with DaemonClient([network.rpc_url(0)]) as daemon:
        assert await daemon.getblockcount() == network.height()
        assert await daemon.getbestblockhash() == network.rpc(0, "getbestblockhash")
        assert await daemon.getblockhash(0) == network.rpc(0, "getblockhash", 0)
        assert (await daemon.getblockchaininfo())["chain"] == "regtest"
        assert (await daemon.getnetworkinfo())["subversion"].startswith("/LitecoinCore:")
        assert await daemon.getconnectioncount() >= 1
        assert (await daemon.validateaddress(network.mining_address))["isvalid"] is True
        assert (await daemon.validateaddress("not-an-address"))["isvalid"] is False
        template = await daemon.getblocktemplate()
        assert template["height"] == network.height() + 1
        assert daemon.failover_count == 0


async def test_rpc_error_surfaces_with_code_and_is_not_retried(network: RegtestNetwork) -> None:
    async with DaemonClient([network.rpc_url(0)], **quick_retries()) as daemon:
        with pytest.raises(DaemonError) as caught:
            await daemon.getblockhash(10**6)
        error = caught.value
        assert type(error) is DaemonError
        assert (error.code, error.message, error.method) == (-8, "Block height out of range", "getblockhash")
        assert error.http_status is None  # set for HTTP-level errors only
        assert daemon.requests_sent == 1

        with pytest.raises(DaemonError) as caught:
            await daemon.call("nosuchmethod")
        assert caught.value.code == -32601
        assert daemon.requests_sent == 2
        assert daemon.failover_count == 0


async def test_batch(network: RegtestNetwork) -> None:
    genesis = network.rpc(0, "getblockhash", 0)
    async with DaemonClient([network.rpc_url(0)]) as daemon:
        assert await daemon.batch([("getblockhash", [0]), ("getblockcount", [])]) == [
            genesis,
            network.height(),
        ]
        results = await daemon.batch([("getblockhash", [0]), ("getblockhash", [10**6])], return_errors=True)
        assert results[0] == genesis
        assert isinstance(results[1], DaemonError) and results[1].code == -8
        with pytest.raises(DaemonError) as caught:
            await daemon.batch([("getblockhash", [10**6])])
        assert caught.value.code == -8
        assert await daemon.batch([]) == []


# -- money ---------------------------------------------------------------------------------------------


async def test_amounts_parse_as_decimal(network: RegtestNetwork) -> None:
    async with DaemonClient([network.rpc_url(0)]) as daemon:
        template = await daemon.getblocktemplate()
        assert type(template["coinbasevalue"]) is int  # satoshis
        balance = await daemon.call("getbalance")
        assert type(balance) is Decimal
        assert coins_to_satoshis(balance) % 1 == 0
        assert type((await daemon.getblockchaininfo())["difficulty"]) is Decimal

        # A Decimal parameter goes out exactly (as a decimal string, which Core takes as an amount).
        amount = Decimal("0.12345678")
        address = await daemon.call("getnewaddress", "", "bech32")
        txid = await daemon.call("sendtoaddress", address, amount)
        details = await daemon.call("gettransaction", txid)
        assert details["amount"] == Decimal(0)  # paid to ourselves
        received = [d for d in details["details"] if d["category"] == "receive"]
        assert received[0]["amount"] == amount
        assert type(details["fee"]) is Decimal


def test_coins_to_satoshis_is_exact() -> None:
    assert coins_to_satoshis(Decimal(1)) == 100_000_000
    assert coins_to_satoshis(Decimal("0.00000001")) == 1
    assert coins_to_satoshis(Decimal("12.50000000")) == 1_250_000_000
    assert coins_to_satoshis(Decimal("84000000.00000001")) == 8_400_000_000_000_001
    assert coins_to_satoshis(Decimal("-0.5")) == -50_000_000
    assert coins_to_satoshis(3) == 300_000_000
    assert satoshis_to_coins(1) == Decimal("0.00000001")
    assert str(satoshis_to_coins(123_456_789)) == "1.23456789"
    with pytest.raises(ValueError, match="whole number of satoshis"):
        coins_to_satoshis(Decimal("0.000000001"))
    with pytest.raises(ValueError):
        coins_to_satoshis(Decimal("NaN"))
    with pytest.raises(TypeError):
        coins_to_satoshis(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        coins_to_satoshis(True)


# -- failures, retries, failover -------------------------------------------------------------------------


def test_endpoint_hides_password() -> None:
    endpoint = DaemonEndpoint.parse("http://alice:hunter2@127.0.0.1:19443")
    assert endpoint.url == "http://127.0.0.1:19443/"
    assert (endpoint.user, endpoint.password) == ("alice", "hunter2")
    assert endpoint.logged_url == "http://alice@127.0.0.1:19443/"
    assert "hunter2" not in repr(endpoint)
    explicit = DaemonEndpoint.parse("http://127.0.0.1:19443/wallet/pool", user="bob", password="pw")
    assert (explicit.url, explicit.user, explicit.password) == (
        "http://127.0.0.1:19443/wallet/pool",
        "bob",
        "pw",
    )
    with pytest.raises(ValueError):
        DaemonEndpoint.parse("ftp://127.0.0.1/")


async def test_failover_to_the_working_daemon(
    network: RegtestNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pool.rpc.client")
    dead = dead_url()
    async with DaemonClient([dead, network.rpc_url(0)], **quick_retries()) as daemon:
        started = time.monotonic()
        assert await daemon.getblockcount() == network.height()
        print(f"\nfailover: first answer after {time.monotonic() - started:.3f}s")
        assert daemon.failover_count == 1
        assert daemon.active_endpoint == daemon.endpoints[1]
        assert daemon.requests_sent == 2
        # The working daemon is remembered: the next call goes straight to it.
        await daemon.getbestblockhash()
        assert daemon.requests_sent == 3
        assert daemon.failover_count == 1
    dead_logged = DaemonEndpoint.parse(dead).logged_url
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(dead_logged in message and "failed" in message for message in warnings)
    assert "secret-dead-password" not in caplog.text
    assert network.rpc_password not in caplog.text


async def test_all_daemons_dead_gives_up_after_bounded_attempts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pool.rpc.client")
    urls = [dead_url(), dead_url()]
    async with DaemonClient(urls, **quick_retries(max_attempts=6)) as daemon:
        started = time.monotonic()
        with pytest.raises(DaemonUnreachable) as caught:
            await daemon.getblockcount()
        elapsed = time.monotonic() - started
    print(f"\nall dead: gave up after {caught.value.attempts} attempts in {elapsed:.3f}s: {caught.value}")
    assert caught.value.attempts == 6
    assert daemon.requests_sent == 6
    assert elapsed < 2.0  # backoff 0.05 + 0.1 between rounds of two
    assert "gave up after 6 attempts" in str(caught.value)
    # One warning per daemon, not one per retry.
    for url in urls:
        logged = DaemonEndpoint.parse(url).logged_url
        failures = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and logged in r.getMessage() and "failed (" in r.getMessage()
        ]
        assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    assert "secret-dead-password" not in caplog.text


async def test_all_daemons_dead_gives_up_within_the_time_bound() -> None:
    async with DaemonClient([dead_url()], **quick_retries(max_attempts=1000, retry_max_time=1.0)) as daemon:
        started = time.monotonic()
        with pytest.raises(DaemonUnreachable) as caught:
            await daemon.call("getblockcount")
        elapsed = time.monotonic() - started
    print(f"\ntime bound: gave up after {caught.value.attempts} attempts in {elapsed:.3f}s")
    assert elapsed < 1.5
    assert 3 <= caught.value.attempts < 20


async def test_client_rides_out_daemon_startup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Called the moment litecoind is launched: connection refused, then -28 warm-up answers
    ("Loading block index...", "Verifying blocks..."), then the real answer."""
    caplog.set_level(logging.INFO, logger="pool.rpc.client")
    base_dir = tmp_path / "restarted"
    with RegtestNetwork(base_dir) as first_run:
        first_run.generate(300)  # something to load and verify on the next start
    restarted = RegtestNetwork(base_dir)
    try:
        restarted.start(wait=False)
        settings = quick_retries(
            retry_initial_delay=0.001, retry_max_delay=0.002, max_attempts=100_000, retry_max_time=30.0
        )
        async with DaemonClient([restarted.rpc_url(0)], **settings) as daemon:
            started = time.monotonic()
            assert await daemon.getblockcount() == 300
            elapsed = time.monotonic() - started
    finally:
        restarted.stop()
    print(
        f"\nstartup: answer after {elapsed:.3f}s, {daemon.requests_sent} requests, "
        f"{daemon.warmup_answers} of them answered -28"
    )
    assert daemon.requests_sent > 1
    assert daemon.failover_count == 0
    assert any("answering again" in record.getMessage() for record in caplog.records)


async def test_wrong_credentials_is_a_clear_error(network: RegtestNetwork) -> None:
    url = f"http://{network.rpc_user}:wrong-password@127.0.0.1:{network.nodes[0].rpc_port}/"
    async with DaemonClient([url], **quick_retries()) as daemon:
        with pytest.raises(DaemonAuthError) as caught:
            await daemon.getblockcount()
    error = caught.value
    assert isinstance(error, DaemonError) and not isinstance(error, DaemonUnreachable)
    assert error.http_status == 401
    assert "401" in str(error) and "rpcpassword" in str(error)
    assert "wrong-password" not in str(error)
    assert daemon.requests_sent == 1


async def test_client_must_be_opened(network: RegtestNetwork) -> None:
    daemon = DaemonClient([network.rpc_url(0)])
    with pytest.raises(RuntimeError, match="async with"):
        await daemon.getblockcount()


def test_warming_up_is_a_daemon_error() -> None:
    assert issubclass(DaemonWarmingUp, DaemonError)
    assert issubclass(DaemonTimeout, DaemonUnreachable)


# -- several daemons, concurrency, long polling ---------------------------------------------------------


async def test_call_all_answers_per_daemon(network: RegtestNetwork) -> None:
    urls = [network.rpc_url(0), dead_url(), network.rpc_url(1)]
    async with DaemonClient(urls, **quick_retries(max_attempts=2)) as daemon:
        replies = await daemon.call_all("getbestblockhash")
    tip = network.rpc(0, "getbestblockhash")
    assert [reply.endpoint for reply in replies] == daemon.endpoints
    assert [reply.ok for reply in replies] == [True, False, True]
    assert replies[0].result == replies[2].result == tip
    assert isinstance(replies[1].error, DaemonUnreachable)
    assert replies[1].error.attempts == 2


async def test_concurrency_limit_is_respected(network: RegtestNetwork) -> None:
    async with DaemonClient([network.rpc_url(0)], max_concurrent_requests=3) as daemon:
        started = time.monotonic()
        results = await asyncio.gather(*(daemon.getblockcount() for _ in range(60)))
        elapsed = time.monotonic() - started
    print(
        f"\n60 concurrent calls through a limit of 3 in {elapsed:.3f}s, peak in flight {daemon.peak_in_flight}"
    )
    assert results == [network.height()] * 60
    assert daemon.peak_in_flight == 3
    assert daemon.in_flight == 0


async def test_longpoll_returns_when_the_other_node_mines(network: RegtestNetwork) -> None:
    async with DaemonClient([network.rpc_url(0)]) as daemon:
        template = await daemon.getblocktemplate()

        async def mine_on_node1_later() -> tuple[str, float]:
            await asyncio.sleep(0.5)
            (block_hash,) = await asyncio.to_thread(network.generate, 1, node=1, sync=False)
            return block_hash, time.monotonic()

        miner = asyncio.create_task(mine_on_node1_later())
        started = time.monotonic()
        new_template = await daemon.getblocktemplate(longpollid=template["longpollid"])
        returned = time.monotonic()
        block_hash, mined = await miner
    print(
        f"\nlong poll returned {returned - started:.3f}s after it started, "
        f"{(returned - mined) * 1000:+.1f} ms after generatetoaddress returned on node1"
    )
    assert new_template["previousblockhash"] == block_hash
    assert new_template["height"] == template["height"] + 1
    assert returned - started >= 0.4
    assert returned - mined < 5.0


async def test_longpoll_timeout_is_not_retried(network: RegtestNetwork) -> None:
    async with DaemonClient([network.rpc_url(0)], longpoll_timeout=0.5, **quick_retries()) as daemon:
        template = await daemon.getblocktemplate()
        started = time.monotonic()
        with pytest.raises(DaemonTimeout):
            await daemon.getblocktemplate(longpollid=template["longpollid"])
        assert time.monotonic() - started < 2.0
        assert daemon.requests_sent == 2
        # The daemon is still the active one and answers normally.
        assert await daemon.getblockcount() == network.height()
        assert daemon.failover_count == 0
