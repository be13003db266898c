"""The Stratum server over real TCP: every method, every limit, hostile input.

The work comes from a real regtest block template (tests/data, recorded from litecoind) with
mainnet-like bits, so that random nonces make valid shares but never blocks.
"""
import asyncio
import json
import socket

import pytest
from stratum_harness import ADDRESS, USER, make_config, make_pool, submit_params  # noqa: F401 (make_pool: a fixture)

from pool.stratum.server import PAUSE_MESSAGE

# -- subscribe / authorize -----------------------------------------------------------------

async def test_subscribe_result_shape(make_pool):
    pool = await make_pool()
    client = await pool.client()
    answer = await client.request("mining.subscribe", ["cpuminer/2.5.1"])
    (subs, extranonce1, size) = answer["result"]
    assert answer["error"] is None
    assert [s[0] for s in subs] == ["mining.set_difficulty", "mining.notify"]
    assert len(extranonce1) == 8 and extranonce1.startswith("07")  # node id 7
    assert size == 4


async def test_extranonce1_unique_per_session(make_pool):
    pool = await make_pool()
    seen = set()
    for _ in range(20):
        client = await pool.client()
        seen.add((await client.request("mining.subscribe", []))["result"][1])
    assert len(seen) == 20


async def test_message_order_after_authorize(make_pool):
    pool = await make_pool()
    client = await pool.client()
    await client.request("mining.subscribe", [])
    await client.request("mining.authorize", [USER, "x"])
    lines = [json.loads(await client.reader.readline()) for _ in range(2)]
    assert [m["method"] for m in lines] == ["mining.set_difficulty", "mining.notify"]
    notify = lines[1]["params"]
    assert notify[-1] is True and len(notify) == 9
    assert all(len(notify[i]) == 8 for i in (5, 6, 7))


@pytest.mark.parametrize("params, code", [
    ([], 24), ([None], 24), ([123], 24), (["", "x"], 24), (["x" * 10_000], 24),
    ([f"{ADDRESS}.bad worker"], 24), ([f"{ADDRESS}.{'w' * 65}"], 24), ([f"{ADDRESS}.<script>"], 24),
    (["ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9.rig"], 24),  # a mainnet address on regtest
    (["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"], 24), ([USER, 5], 20), ([USER, "p" * 1000], 20),
])
async def test_authorize_refusals(make_pool, params, code):
    pool = await make_pool()
    client = await pool.client()
    await client.request("mining.subscribe", [])
    answer = await client.request("mining.authorize", params)
    assert answer["result"] is None and answer["error"][0] == code
    assert (await client.request("mining.subscribe", []))["error"] is None  # still served


@pytest.mark.parametrize("address, reason", [
    ("ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9", "(this is a Litecoin mainnet address)"),
    ("mfWyW5fc9NUj75YAnFgoRLrjxgLDn6Ysl", "(character 'l' is not base58)"),
])
async def test_authorize_refusal_says_what_is_wrong_with_the_address(make_pool, address, reason):
    pool = await make_pool()
    client = await pool.client()
    await client.request("mining.subscribe", [])
    answer = await client.request("mining.authorize", [f"{address}.rig", "x"])
    assert answer["error"][0] == 24
    assert answer["error"][1] == ("not a Litecoin regtest address: bech32 prefix rltc1 or base58 m/n/Q/2 "
                                  f"expected {reason}")


async def test_authorize_before_subscribe_is_25(make_pool):
    pool = await make_pool()
    client = await pool.client()
    answer = await client.request("mining.authorize", [USER, "x"])
    assert answer["error"][0] == 25


async def test_password_difficulty_option(make_pool):
    pool = await make_pool(make_config({"min_difficulty": 0.001, "difficulty": 0.01, "max_difficulty": 1000}))
    _, info = await pool.miner(password="d=64")
    assert info["difficulty"] == 64
    _, info = await pool.miner(password="x,d=1e9")
    assert info["difficulty"] == 1000  # clamped to the port
    _, info = await pool.miner(password="d=nan")
    assert info["difficulty"] == 0.01


# -- submit -----------------------------------------------------------------------------------

async def test_submit_codes(make_pool):
    pool = await make_pool()
    client, info = await pool.miner()
    job = info["job"]
    ok = await client.request("mining.submit", submit_params(job))
    assert ok == {"id": ok["id"], "result": True, "error": None}
    assert (await client.request("mining.submit", submit_params(job)))["error"][0] == 22
    assert (await client.request("mining.submit", submit_params(["ffff"] + job[1:])))["error"][0] == 21
    assert (await client.request("mining.submit", submit_params(job, extranonce2="0000000G")))["error"][0] == 20
    assert (await client.request("mining.submit", submit_params(job, user=f"{ADDRESS}.other")))["error"][0] == 24
    bad_ntime = f"{int(job[7], 16) + 3600:08x}"
    assert (await client.request("mining.submit", submit_params(job, nonce=1, ntime=bad_ntime)))["error"][0] == 20
    assert pool.recorder.shares == 1


async def test_submit_before_subscribe_and_authorize(make_pool):
    pool = await make_pool()
    client = await pool.client()
    job = pool.server.current_job.notify_params
    assert (await client.request("mining.submit", submit_params(job)))["error"][0] == 25
    await client.request("mining.subscribe", [])
    assert (await client.request("mining.submit", submit_params(job)))["error"][0] == 24


async def test_low_difficulty_is_23(make_pool):
    pool = await make_pool(make_config({"max_difficulty": 1e12}))
    client, info = await pool.miner(password="d=1e12")
    answer = await client.request("mining.submit", submit_params(info["job"]))
    assert answer["error"][0] == 23


@pytest.mark.parametrize("params", [
    None, {}, "x", [], [USER], [USER, "1", "00000000", "6553f100"], [USER, 1, 2, 3, 4], [[], [], [], [], []],
    [USER, "1", "00000000", "6553f100", "00000000", "00000000", "extra"],
    [USER, "1", "00000000", "6553f100", "x" * 10_000],
])
async def test_submit_hostile_params(make_pool, params):
    pool = await make_pool()
    client, _ = await pool.miner()
    msg = json.dumps({"id": 9, "method": "mining.submit", "params": params})
    await client.send_raw(msg.encode() + b"\n")
    answer = await client.response(9)
    assert answer["result"] is None and answer["error"][0] == 20
    assert (await client.request("mining.subscribe", []))["error"] is None


async def test_new_block_job_is_clean_and_old_job_stale(make_pool):
    pool = await make_pool()
    client, info = await pool.miner()
    old = info["job"]
    pool.new_job(clean=True, previousblockhash="11" * 32)
    notify = await client.notification("mining.notify")
    assert notify["params"][-1] is True and notify["params"][0] != old[0]
    answer = await client.request("mining.submit", submit_params(old, nonce=5))
    assert answer["error"][0] == 21
    assert (await client.request("mining.submit", submit_params(notify["params"], nonce=5)))["result"] is True


@pytest.mark.parametrize("broadcast_threads", [3, 1])
async def test_broadcast_keeps_every_stream_whole(make_pool, broadcast_threads):
    """Jobs written straight to the sockets from several threads (or queued and written in bursts of
    three connections): every miner gets every job, whole and in order, also one that stops reading
    (its socket fills; the rest goes through its transport)."""
    pool = await make_pool(broadcast_threads=broadcast_threads)
    pool.server.parallel_broadcast_min = 1
    pool.server.write_burst = 3
    miners = [(await pool.miner())[0] for _ in range(12)]
    stalled = socket.create_connection(("127.0.0.1", pool.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b'{"id": 1, "method": "mining.subscribe", "params": []}\n'
                    b'{"id": 2, "method": "mining.authorize", "params": ["%s", "x"]}\n' % USER.encode())
    await asyncio.sleep(0.2)
    newest = max(pool.server.sessions, key=lambda session: session.number)  # the stalled one's
    newest.protocol.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sent = []
    for _ in range(60):
        sent.append(pool.new_job(clean=False).job_id)
        await asyncio.sleep(0.002)  # answers and transport writes go on between broadcasts
    for client in miners:
        got = [(await client.notification("mining.notify"))["params"][0] for _ in sent]
        assert got == sent
    stalled.setblocking(False)
    received = b""
    notified: list = []
    while len(notified) < len(sent) + 1:  # the first is the job of the handshake
        chunk = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(stalled, 1 << 16), 5)
        assert chunk, "closed by the server"
        received += chunk
        messages = [json.loads(line) for line in received.split(b"\n")[:-1]]  # every line whole JSON
        notified = [m["params"][0] for m in messages if m.get("method") == "mining.notify"]
    stalled.close()
    assert notified[1:] == sent


# -- configure, difficulty, extranonce, transactions --------------------------------------

async def test_configure_version_rolling(make_pool):
    pool = await make_pool()
    client = await pool.client()
    answer = await client.request("mining.configure", [["version-rolling", "minimum-difficulty", "foo"],
                                                        {"version-rolling.mask": "ffffffff",
                                                         "version-rolling.min-bit-count": 2,
                                                         "minimum-difficulty.value": 1e-9}])
    assert answer["result"] == {"version-rolling": True, "version-rolling.mask": "1fffe000",
                                "minimum-difficulty": True, "foo": False}
    await client.request("mining.subscribe", [])
    await client.request("mining.authorize", [USER, "x"])
    job = (await client.notification("mining.notify"))["params"]
    assert (await client.request("mining.submit", submit_params(job, version="00ffe000")))["result"] is True
    assert (await client.request("mining.submit", submit_params(job, nonce=1, version="e0000000")))["error"][0] == 20

    other = await pool.client()
    answer = await other.request("mining.configure", [["version-rolling"], {"version-rolling.mask": "ffff0000"}])
    assert answer["result"]["version-rolling.mask"] == "1fff0000"


@pytest.mark.parametrize("params", [[], [5], [["version-rolling"], {"version-rolling.mask": "xyz"}],
                                    [["version-rolling"], []], [[1, 2]], [["a"] * 100]])
async def test_configure_hostile(make_pool, params):
    pool = await make_pool()
    client = await pool.client()
    assert (await client.request("mining.configure", params))["error"][0] == 20


async def test_suggest_difficulty(make_pool):
    pool = await make_pool(make_config({"min_difficulty": 0.001, "difficulty": 0.01, "max_difficulty": 1000}))
    client = await pool.client()
    await client.request("mining.subscribe", [])
    assert (await client.request("mining.suggest_difficulty", [5]))["result"] is True  # before authorize
    await client.request("mining.authorize", [USER, "x"])
    assert (await client.notification("mining.set_difficulty"))["params"] == [5]
    first_job = (await client.notification("mining.notify"))["params"]
    assert (await client.request("mining.suggest_difficulty", [1e9]))["result"] is True  # after: clamped
    assert (await client.notification("mining.set_difficulty"))["params"] == [1000]
    alias = (await client.notification("mining.notify"))["params"]
    assert alias[0] != first_job[0] and alias[1:8] == first_job[1:8] and alias[-1] is False
    for bad in ([0], [-1], ["10"], [None], [True], [[1]], [1e-300 * 0], []):
        answer = await client.request("mining.suggest_difficulty", bad)
        assert answer["error"][0] == 20, bad
    await client.send_raw(b'{"id": 77, "method": "mining.suggest_difficulty", "params": [NaN]}\n')
    assert (await client.response(None))["error"][0] == 20
    await client.send_raw(b'{"id": 78, "method": "mining.suggest_difficulty", "params": [1e999]}\n')
    assert (await client.response(None))["error"][0] == 20


async def test_shares_on_old_job_count_at_old_difficulty(make_pool):
    pool = await make_pool()
    client, info = await pool.miner()
    await client.request("mining.suggest_difficulty", [1e12])
    await client.notification("mining.set_difficulty")
    alias = (await client.notification("mining.notify"))["params"]
    # in flight on the old job id: judged at the old difficulty, not rejected for the change
    assert (await client.request("mining.submit", submit_params(info["job"], nonce=3)))["result"] is True
    assert (await client.request("mining.submit", submit_params(alias, nonce=4)))["error"][0] == 23


async def test_extranonce_subscribe_and_get_transactions(make_pool):
    pool = await make_pool()
    client, info = await pool.miner()
    assert (await client.request("mining.extranonce.subscribe", []))["result"] is True
    assert (await client.request("mining.get_transactions", [info["job"][0]]))["error"][0] == 20  # disabled

    enabled = await make_pool(make_config(get_transactions=True))
    client, info = await enabled.miner()
    answer = await client.request("mining.get_transactions", [info["job"][0]])
    assert answer["result"] == [tx.hex() for tx in enabled.server.current_job.template.tx_data]
    assert (await client.request("mining.get_transactions", ["nope"]))["error"][0] == 21
    assert (await client.request("mining.get_transactions", [{"a": 1}]))["error"][0] == 21


async def test_session_resume_returns_extranonce1(make_pool):
    pool = await make_pool()
    first = await pool.client()
    extranonce1 = (await first.request("mining.subscribe", ["miner"]))["result"][1]
    await first.close()
    await asyncio.sleep(0.1)
    second = await pool.client()
    answer = await second.request("mining.subscribe", ["miner", extranonce1])
    assert answer["result"][1] == extranonce1
    third = await pool.client()  # the same id while in use: a fresh one
    assert (await third.request("mining.subscribe", ["miner", extranonce1]))["result"][1] != extranonce1


# -- hostile framing and limits ------------------------------------------------------------

@pytest.mark.parametrize("line", [
    b"not json", b"[1,2,3]", b'"string"', b"{", b'{"id": 1, "method": 5}', b'{"id": {}, "method": "mining.subscribe"}',
    b'{"id": 1, "method": "mining.subscribe", "params": {"a": 1}}', b"[" * 5000 + b"]" * 5000,
    b'{"id": 1, "method": "mining.subscribe", "params": [NaN]}', b"\xff\xfe\x00garbage", b'{"id": Infinity}',
])
async def test_malformed_lines_get_error_20(make_pool, line):
    pool = await make_pool()
    client = await pool.client()
    await client.send_raw(line + b"\n")
    answer = json.loads(await client.reader.readline())
    assert answer["error"][0] == 20 and answer["result"] is None
    assert (await client.request("mining.subscribe", []))["error"] is None


async def test_unknown_method(make_pool):
    pool = await make_pool()
    client = await pool.client()
    assert (await client.request("mining.fly", [1]))["error"] == [20, "unknown method", None]
    assert (await client.request("mining.subscribe", []))["error"] is None


async def test_too_many_bad_messages_disconnect(make_pool):
    pool = await make_pool(make_config(max_bad_messages=3))
    client = await pool.client()
    await client.send_raw(b"x\n" * 3)
    assert await client.closed()
    healthy, _ = await pool.miner()
    assert (await healthy.request("mining.subscribe", []))["error"] is None


async def test_line_too_long_disconnects_only_that_client(make_pool):
    pool = await make_pool(make_config(max_line_bytes=1024))
    bystander, info = await pool.miner()
    client = await pool.client()
    await client.send_raw(b'{"id":1,"method":"mining.subscribe","params":["' + b"a" * 5000)
    assert await client.closed()
    client2 = await pool.client()
    await client2.send_raw(b"b" * 2000 + b"\n")
    assert await client2.closed()
    assert (await bystander.request("mining.submit", submit_params(info["job"])))["result"] is True


async def test_handshake_and_idle_timeouts(make_pool):
    pool = await make_pool(make_config(handshake_timeout_s=1.0, idle_timeout_s=2.5))
    silent = await pool.client()
    subscribed_only = await pool.client()
    await subscribed_only.request("mining.subscribe", [])
    idle, _ = await pool.miner()
    assert await silent.closed(timeout=4)
    assert await subscribed_only.closed(timeout=4)
    assert await idle.closed(timeout=6)
    assert pool.server.stats["dropped_handshake_timeout"] == 2
    assert pool.server.stats["dropped_idle"] == 1


async def test_connection_caps(make_pool):
    pool = await make_pool(make_config(max_connections_per_ip=3, max_connections=5))
    clients = [await pool.client() for _ in range(3)]
    for client in clients:
        assert (await client.request("mining.subscribe", []))["error"] is None
    refused = await pool.client()
    assert await refused.closed()
    assert pool.server.stats["refused_per_ip"] == 1
    await clients[0].close()
    await asyncio.sleep(0.1)
    again = await pool.client()
    assert (await again.request("mining.subscribe", []))["error"] is None


async def test_client_that_never_reads_is_dropped(make_pool):
    pool = await make_pool(make_config(send_buffer_bytes=65536))
    honest, info = await pool.miner()
    lazy = await pool.client()
    await lazy.request("mining.subscribe", ["lazy"])
    lazy_session = next(s for s in pool.server.sessions if s.user_agent == "lazy")
    message = "m" * 200_000
    for _ in range(300):  # up to 60 MB, far beyond the socket buffers
        lazy_session.send_notification("client.show_message", [message])
        await asyncio.sleep(0)
        if pool.server.stats["dropped_slow_reader"]:
            break
    assert pool.server.stats["dropped_slow_reader"] == 1
    for _ in range(100):  # dropped where the loop wrote its queued bytes; the transport's end follows
        if lazy_session.closed or lazy_session.protocol.transport is None:
            break
        await asyncio.sleep(0.01)
    assert lazy_session.closed or lazy_session.protocol.transport is None
    assert (await honest.request("mining.submit", submit_params(info["job"])))["result"] is True


async def test_invalid_share_ratio_ban(make_pool):
    pool = await make_pool(make_config(ban_min_shares=10, ban_invalid_ratio=0.5, ban_duration_s=30))
    client, info = await pool.miner()
    for n in range(10):
        await client.send_raw(json.dumps({"id": 100 + n, "method": "mining.submit",
                                          "params": submit_params(info["job"], nonce=n, extranonce2="zz")}).encode() + b"\n")
    assert await client.closed()
    assert pool.server.stats["bans"] == 1
    refused = await pool.client()
    assert await refused.closed()


async def test_shutdown_sends_reconnect(make_pool):
    pool = await make_pool()
    client, _ = await pool.miner()
    await pool.server.stop("maintenance")
    assert (await client.notification("client.show_message"))["params"] == ["maintenance"]
    assert (await client.notification("client.reconnect"))["params"] == []


async def test_daemon_away_tells_miners_and_recovers(make_pool):
    pool = await make_pool()
    client, info = await pool.miner()
    reason = "getblocktemplate at http://quarry@127.0.0.1:19443/: Connection refused (code -1)"
    pool.server.work_unavailable(reason)
    pool.server.work_unavailable(reason)  # told once
    message = await client.notification("client.show_message")
    assert message["params"] == [PAUSE_MESSAGE]  # nothing of the daemon
    with pytest.raises(TimeoutError):
        await client.notification("client.show_message", timeout=0.3)
    # no job is valid while there is no work: a share on the last one is stale, and not recorded
    assert (await client.request("mining.submit", submit_params(info["job"])))["error"][0] == 21
    assert pool.recorder.shares == 0
    late = await pool.client()
    await late.request("mining.subscribe", [])
    assert (await late.request("mining.authorize", [USER, "x"]))["result"] is True
    await late.notification("mining.set_difficulty")
    with pytest.raises(TimeoutError):
        await late.notification("mining.notify", timeout=0.5)  # no work while the daemon is away
    pool.new_job(clean=True, previousblockhash="22" * 32)
    job = (await client.notification("mining.notify"))["params"]
    assert job[-1] is True
    assert (await late.notification("mining.notify"))["params"][-1] is True
    assert (await client.request("mining.submit", submit_params(job)))["result"] is True


async def test_retired_jobs_are_stale_and_the_next_job_is_clean(make_pool):
    """The tip moved past the jobs (no new template yet): shares on them are stale and never
    recorded, also one judged after the retirement but looked up before; the next job is clean."""
    pool = await make_pool()
    client, info = await pool.miner()
    assert (await client.request("mining.submit", submit_params(info["job"], nonce=1)))["result"] is True
    assert pool.server.retire_jobs() == 1
    assert pool.server.current_job is None and pool.server.work_available is False
    assert (await client.request("mining.submit", submit_params(info["job"], nonce=2)))["error"] == [
        21, "stale share", None]
    session = next(iter(pool.server.sessions))
    job = pool.new_job(clean=False, previousblockhash="33" * 32)  # after a retirement: sent clean anyway
    notify = (await client.notification("mining.notify"))["params"]
    assert notify[0] == job.job_id and notify[-1] is True
    result = pool.server.validator.validate(session.state, submit_params(notify, nonce=3))
    assert result.reject is None
    pool.server.retire_jobs()  # while the share was hashing on another thread
    pool.server._judged(session, 99, result)
    assert (await client.response(99))["error"][0] == 21
    assert pool.recorder.shares == 1 and pool.server.stats["shares_rejected_21"] == 2


async def test_vardiff_raises_difficulty_for_a_fast_miner(make_pool):
    config = make_config({"vardiff": True, "difficulty": 1e-9, "min_difficulty": 1e-10, "max_difficulty": 1,
                          "target_share_s": 5, "retarget_s": 30})
    pool = await make_pool(config)
    client, info = await pool.miner()
    for n in range(12):
        assert (await client.request("mining.submit", submit_params(info["job"], nonce=n)))["result"] is True
    raised = await client.notification("mining.set_difficulty")
    assert raised["params"][0] > 1e-9
    alias = (await client.notification("mining.notify"))["params"]
    assert alias[-1] is False


async def test_multiple_ports_with_their_own_difficulty(make_pool):
    ports = [{"port": 0, "host": "127.0.0.1", "difficulty": 0.5, "min_difficulty": 0.1, "max_difficulty": 10,
              "vardiff": False},
             {"port": 0, "host": "127.0.0.1", "difficulty": 500, "min_difficulty": 100, "max_difficulty": 1000,
              "vardiff": False}]
    pool = await make_pool(make_config(ports=ports))
    got = []
    for port in pool.server.ports:
        client = await pool.client(port)
        await client.request("mining.subscribe", [])
        await client.request("mining.authorize", [USER, "x"])
        got.append((await client.notification("mining.set_difficulty"))["params"][0])
    assert got == [0.5, 500]


async def test_many_clients_one_hostile(make_pool):
    """A hostile client sending everything at once does not disturb honest miners."""
    pool = await make_pool()
    honest = [await pool.miner() for _ in range(5)]
    hostile = await pool.client()
    junk = [b"\x00" * 100, b"{" * 2000, json.dumps({"id": 1, "method": "mining.submit", "params": [1e308] * 6}).encode(),
            json.dumps({"id": [1], "method": "mining.authorize"}).encode(), b'{"method": null}']
    await hostile.send_raw(b"\n".join(junk) + b"\n")
    for n, (client, info) in enumerate(honest):
        assert (await client.request("mining.submit", submit_params(info["job"], nonce=1000 + n)))["result"] is True
    assert pool.server.stats["internal_error"] == 0
