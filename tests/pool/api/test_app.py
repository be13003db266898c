"""The API on a real PostgreSQL: every route with good and hostile input, rate limit, CORS, escaping,
the OpenAPI document against the routes, the live feed, /metrics."""
from __future__ import annotations

import asyncio
import ipaddress
import time

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_seed import ALICE, BOB, CAROL, HOSTILE_WORKER, POOL, api_config, seed

from payouts import merkle
from pool.api.app import make_app
from pool.api.ratelimit import RateLimiter, RateLimits
from pool.api.routes import DASHBOARD_CSP, DASHBOARD_ROUTES, DATA, FEED, ROUTES
from pool.config import TrustedNetwork

P = f"/api/v1/pools/{POOL}"


@pytest.fixture
async def seeded(db):
    return await seed(db)


async def client_for(db, **api) -> TestClient:
    client = TestClient(TestServer(make_app(api_config(**api), db, network_poll_s=None)))
    await client.start_server()
    return client


@pytest.fixture
async def client(db, seeded):
    client = await client_for(db)
    yield client
    await client.close()


async def get(client, path, status=200, **kwargs):
    response = await client.get(path, **kwargs)
    body = await response.read()
    assert response.status == status, (path, response.status, body[:300])
    if response.content_type == "application/json":
        return orjson.loads(body)
    return body.decode()


def assert_error(body, status, code=None):
    assert set(body) == {"error"} and body["error"]["status"] == status
    assert isinstance(body["error"]["message"], str)
    if code is not None:
        assert body["error"]["code"] == code


# -- good input ----------------------------------------------------------------------------------------

async def test_pools_shows_coin_scheme_fees_ports_hashrate_network_round(client):
    pools = (await get(client, "/api/v1/pools"))["pools"]
    assert len(pools) == 1
    pool = await get(client, P)
    assert pool == pools[0]
    assert pool["id"] == POOL and pool["coin"]["algorithm"] == "scrypt"
    assert pool["scheme"] == {"name": "pplns", "pplns_factor": "2"}
    assert pool["fee"]["pool_percent"] == "1" and pool["fee"]["total_percent"] == "1"
    assert pool["ports"] == [{"port": 3333, "name": "low", "difficulty": 16.0, "min_difficulty": 1.0,
                              "max_difficulty": 4096.0, "vardiff": True}]
    # 5 complete minutes of 100 + 50 + 10 difficulty, scrypt: 2**16 hashes per difficulty
    assert pool["hashrate"]["5m"] == pytest.approx(5 * 160 * 2**16 / 300)
    assert pool["hashrate"]["1h"] == pytest.approx(30 * 160 * 2**16 / 3600)
    assert 0 < pool["hashrate"]["24h"] <= pool["hashrate"]["1h"]
    assert pool["miners_online"] == 2 and pool["workers_online"] == 3
    assert pool["network"]["source"] == "ledger" and pool["network"]["height"] == 101
    assert pool["last_block"]["height"] == 101 and pool["last_block"]["status"] == "pending"
    assert pool["round"]["effort"] == 0.25 and pool["blocks_found"] == 2
    assert pool["total_paid"] == 1000 and pool["total_paid_coins"] == "0.00001000"
    assert pool["pps_reserve"] is None


async def test_performance_series_cover_24_hours_and_30_days(client):
    body = await get(client, f"{P}/performance")
    assert len(body["ten_minutes"]) == 144 and len(body["hourly"]) == 720
    times = [point["time"] for point in body["ten_minutes"]]
    assert times == sorted(times) and all(b - a == 600 for a, b in zip(times, times[1:]))
    assert sum(point["workers"] > 0 for point in body["ten_minutes"]) >= 2
    # The hour being filled is not shown: the 30 seeded minutes count only once they are in a past hour.
    hour_start = body["hourly"][-1]["time"] + 3600
    minute = int(time.time() // 60 * 60)
    in_past_hours = sum(1 for ago in range(1, 31) if minute - 60 * ago < hour_start)
    shown = sum(point["hashrate"] for point in body["hourly"]) * 3600 / 2**16
    assert shown == pytest.approx(in_past_hours * 160)


async def test_blocks_are_paged_newest_first_with_a_shortened_finder(client):
    page = await get(client, f"{P}/blocks?page_size=2")
    assert page["total"] == 3 and page["page"] == 0 and page["page_size"] == 2
    assert [block["height"] for block in page["items"]] == [101, 100]
    block = page["items"][1]
    assert block["status"] == "confirmed" and block["credited"] and block["reward"] == 5_000_000_000
    assert block["reward_coins"] == "50.00000000" and block["finder"] == f"{ALICE[:6]}...{ALICE[-4:]}"
    assert (await get(client, f"{P}/blocks?page=1&page_size=2"))["items"][0]["height"] == 99
    assert (await get(client, f"{P}/blocks?status=orphaned"))["total"] == 1
    assert (await get(client, f"{P}/blocks?page=999"))["items"] == []


async def test_payout_report_and_inclusion_proof(client, seeded):
    report = seeded["report"]
    payout = await get(client, f"{P}/blocks/100/payout")
    assert payout["merkle_root"] == report.merkle_root and payout["report"] == report.to_dict()
    proof = await get(client, f"{P}/miners/{ALICE}/proof/100")
    assert proof["amount"] == report.amounts()[ALICE] and proof["verified"]
    steps = [(step["side"], step["hash"]) for step in proof["proof"]]
    assert merkle.verify_proof(report.merkle_root, ALICE, proof["amount"], steps)
    assert not merkle.verify_proof(report.merkle_root, ALICE, proof["amount"] + 1, steps)
    assert_error(await get(client, f"{P}/miners/{CAROL}/proof/100", 404), 404, "no_payout")
    assert_error(await get(client, f"{P}/blocks/101/payout", 404), 404, "no_payout")


async def test_payments_are_paged(client, seeded):
    page = await get(client, f"{P}/payments")
    assert page["total"] == 1
    assert page["items"] == [{"id": seeded["payment_id"], "txid": "ab" * 32, "status": "confirmed", "amount": 1000,
                              "amount_coins": "0.00001000", "fee": 10, "payees": 1, "confirmations": 6,
                              "time": page["items"][0]["time"]}]


async def test_top_miners_and_one_miner(client, seeded):
    top = await get(client, f"{P}/miners")
    assert [miner["address"] for miner in top["items"]] == [ALICE, BOB]
    assert top["items"][0]["workers_online"] == 2
    miner = await get(client, f"{P}/miners/{ALICE}")
    assert miner["address"] == ALICE and miner["workers_total"] == 2 and miner["workers_online"] == 2
    assert miner["hashrate"]["5m"] == pytest.approx(5 * 150 * 2**16 / 300)
    assert {worker["name"] for worker in miner["workers"]} == {"rig1", HOSTILE_WORKER}
    assert miner["balance"] == seeded["report"].amounts()[ALICE] and miner["total_paid"] == 1000
    assert miner["payments"][0]["txid"] == "ab" * 32 and miner["payments"][0]["amount"] == 1000
    assert miner["daily_earnings"][-1]["amount"] == seeded["report"].amounts()[ALICE]
    # a pending block of 50 coins; Alice did 150 of 160 difficulty over 24 h; 1 % fee
    assert 0 < miner["immature_estimate"] <= 5_000_000_000 * 99 // 100 * 150 // 160


async def test_worker_windows_from_the_snapshot(db, seeded):
    """A worker seen 3 h ago counts in the 24 h window only; one seen only this minute is online with
    no complete minute yet; the top miners come from the same snapshot."""
    from datetime import UTC, datetime, timedelta

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    old = minute - timedelta(hours=3)
    await db.copy_records_to_table(
        "worker_minutes", records=[(POOL, ALICE, "old-rig", old, 6, 600.0, old + timedelta(seconds=5)),
                                   (POOL, CAROL, "new-rig", minute, 1, 8.0, minute + timedelta(seconds=1))],
        columns=["pool", "address", "worker", "minute", "shares", "difficulty_sum", "last_share"])
    client = await client_for(db)
    try:
        miner = await get(client, f"{P}/miners/{ALICE}")
        workers = {worker["name"]: worker for worker in miner["workers"]}
        assert set(workers) == {"rig1", HOSTILE_WORKER, "old-rig"} and miner["workers_total"] == 3
        old_rig = workers["old-rig"]
        assert old_rig["hashrate"] == {"5m": 0.0, "1h": 0.0, "24h": pytest.approx(600 * 2**16 / 86400)}
        assert old_rig["last_share"] == (old + timedelta(seconds=5)).timestamp() and not old_rig["online"]
        assert miner["hashrate"]["24h"] == pytest.approx(sum(w["hashrate"]["24h"] for w in miner["workers"]))
        carol = await get(client, f"{P}/miners/{CAROL}")  # no balance, only this minute's share
        assert carol["workers_online"] == 1 and carol["hashrate"] == {"5m": 0.0, "1h": 0.0, "24h": 0.0}
        top = [miner["address"] for miner in (await get(client, f"{P}/miners"))["items"]]
        assert top == [ALICE, BOB, CAROL]  # by the last hour's work; Carol's minute is not complete
    finally:
        await client.close()


async def test_a_miners_money_is_served_from_memory_until_the_ledger_changes(db, client, seeded):
    """Balance and payments are kept per miner until a ledger transaction commits (NOTIFY from the
    tables' triggers): the page changes with the commit, not before, never a cache period later."""
    data = client.server.app[DATA]
    async with asyncio.timeout(10):
        while not data._money_valid:  # the listener is up
            await asyncio.sleep(0.05)
    before = await get(client, f"{P}/miners/{ALICE}")
    statements = data.miner_money.statements
    assert (await get(client, f"{P}/miners/{ALICE}"))["balance"] == before["balance"]
    assert data.miner_money.statements == statements  # from memory
    async with db.acquire() as connection, connection.transaction():
        await connection.execute("UPDATE balances SET amount = amount + 7 WHERE pool = $1 AND address = $2",
                                 POOL, ALICE)
        # not committed yet: the page still shows the committed balance
        assert (await get(client, f"{P}/miners/{ALICE}"))["balance"] == before["balance"]
    async with asyncio.timeout(5):
        while (await get(client, f"{P}/miners/{ALICE}"))["balance"] != before["balance"] + 7:
            await asyncio.sleep(0.01)
    await db.execute("UPDATE balances SET amount = amount - 7 WHERE pool = $1 AND address = $2", POOL, ALICE)
    async with asyncio.timeout(5):
        while (await get(client, f"{P}/miners/{ALICE}"))["balance"] != before["balance"]:
            await asyncio.sleep(0.01)


async def test_money_is_read_ahead_and_a_change_forgets_only_the_miner_it_names(db, client, seeded):
    """Once listening, the API reads every miner's money ahead; a committed change names its miner
    (row triggers), and only that miner's page reads the database again."""
    data = client.server.app[DATA]
    async with asyncio.timeout(10):
        while not (data._money_valid and ALICE in data._money and BOB in data._money):
            await asyncio.sleep(0.05)
    statements = data.miner_money.statements
    await get(client, f"{P}/miners/{ALICE}")
    await get(client, f"{P}/miners/{BOB}")
    assert data.miner_money.statements == statements  # read ahead: both from memory
    await db.execute("UPDATE balances SET amount = amount + 3 WHERE pool = $1 AND address = $2", POOL, BOB)
    async with asyncio.timeout(5):
        while BOB in data._money:
            await asyncio.sleep(0.01)
    assert ALICE in data._money
    bob = await get(client, f"{P}/miners/{BOB}")
    assert bob["balance"] == await db.fetchval(
        "SELECT amount FROM balances WHERE pool = $1 AND address = $2", POOL, BOB)
    await get(client, f"{P}/miners/{ALICE}")
    assert data.miner_money.statements == statements + 1  # Bob's page only
    # A payment changing status names its payees.
    await db.execute("UPDATE payments SET status = 'broadcast' WHERE pool = $1", POOL)
    async with asyncio.timeout(5):
        while ALICE in data._money:
            await asyncio.sleep(0.01)
    assert (await get(client, f"{P}/miners/{ALICE}"))["payments"][0]["status"] == "broadcast"
    await db.execute("UPDATE payments SET status = 'confirmed' WHERE pool = $1", POOL)


async def test_a_lost_ledger_listener_means_reading_the_database_again(db, client, seeded):
    data = client.server.app[DATA]
    async with asyncio.timeout(10):
        while not data._money_valid:
            await asyncio.sleep(0.05)
    await get(client, f"{P}/miners/{ALICE}")
    await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
                     " AND pid <> pg_backend_pid()")
    async with asyncio.timeout(5):
        while data._money_valid:
            await asyncio.sleep(0.01)
    statements = data.miner_money.statements
    await get(client, f"{P}/miners/{ALICE}")
    await get(client, f"{P}/miners/{ALICE}")
    assert data.miner_money.statements == statements + 2  # no memory while nobody listens
    async with asyncio.timeout(10):
        while not data._money_valid:  # listening again
            await asyncio.sleep(0.05)


async def test_miner_performance_is_the_miners_own_series(client):
    body = await get(client, f"{P}/miners/{ALICE}/performance")
    points = body["ten_minutes"]
    assert body["address"] == ALICE and len(points) == 144
    assert all(b["time"] - a["time"] == 600 for a, b in zip(points, points[1:]))
    # Alice's 150 difficulty a minute (Bob's 10 not included), at most 10 minutes a bucket
    assert max(point["hashrate"] for point in points) <= 10 * 150 * 2**16 / 600 + 1e-6
    shown = sum(point["hashrate"] * 600 for point in points) / 2**16
    assert 0 < shown <= 30 * 150 + 1e-6  # 30 minutes seeded; the bucket being filled is not shown
    assert {point["workers"] for point in points} <= {0, 2}
    unknown = await get(client, f"{P}/miners/{CAROL}/performance")
    assert all(point["hashrate"] == 0 for point in unknown["ten_minutes"])


async def test_estimate_uses_network_difficulty_reward_and_fee(client):
    body = await get(client, f"{P}/estimate?hashrate=1000&power_w=100&price_kwh=0.2&coin_price=50")
    hashes_per_block = 0.5 * 2**16  # the latest block's network difficulty, scrypt
    blocks_per_day = 1000 * 86400 / hashes_per_block
    assert body["blocks_per_day"] == pytest.approx(blocks_per_day)
    assert body["satoshis_per_day"] == int(blocks_per_day * 5_000_000_000 * 0.99)
    assert body["power_cost_per_day"] == pytest.approx(0.1 * 24 * 0.2)
    assert body["profit_per_day"] == pytest.approx(body["revenue_per_day"] - body["power_cost_per_day"])
    bare = await get(client, f"{P}/estimate?hashrate=1000")
    assert bare["revenue_per_day"] is None and bare["power_cost_per_day"] == 0


async def test_worker_names_are_escaped_for_html(client):
    raw = await (await client.get(f"{P}/miners/{ALICE}")).read()
    assert b"<" not in raw and b">" not in raw and b"&" not in raw
    assert b"\\u003cscript\\u003e" in raw
    assert HOSTILE_WORKER in {worker["name"] for worker in orjson.loads(raw)["workers"]}


async def test_dashboard_is_served_with_a_content_security_policy(client):
    response = await client.get("/")
    page = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"] == DASHBOARD_CSP and "script-src 'self'" in DASHBOARD_CSP
    assert '<script type="module" src="/static/app.js">' in page and "<script>" not in page
    for name, content_type in (("app.js", "text/javascript"), ("style.css", "text/css"),
                               ("favicon.svg", "image/svg+xml")):
        response = await client.get(f"/static/{name}")
        assert response.status == 200 and response.content_type == content_type, name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    script = await (await client.get("/static/app.js")).text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script
    for path in ("/static/../app.py", "/static/app.py", "/static/%2e%2e%2fapp.py", "/static/"):
        assert (await client.get(path)).status == 404, path


# -- hostile input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, status, code", [
    ("/api/v1/pools/bitcoin", 404, "unknown_pool"),
    ("/api/v1/pools/bitcoin/miners", 404, "unknown_pool"),
    (f"/api/v1/pools/bitcoin/miners/{ALICE}", 404, "unknown_pool"),
    (f"{P}/miners/not-an-address", 400, "malformed_address"),
    (f"{P}/miners/{ALICE[:-1]}x", 400, "malformed_address"),
    (f"{P}/miners/{'1' * 500}", 400, "malformed_address"),
    (f"{P}/miners/%00%ff", 400, "malformed_address"),
    (f"{P}/miners/{CAROL}", 404, "unknown_miner"),
    (f"{P}/miners/not-an-address/proof/100", 400, "malformed_address"),
    (f"{P}/miners/{ALICE}/proof/abc", 400, "bad_height"),
    (f"{P}/miners/{ALICE}/proof/-1", 400, "bad_height"),
    (f"{P}/miners/{ALICE}/proof/{10**30}", 400, "bad_height"),
    (f"{P}/blocks/1e3/payout", 400, "bad_height"),
    (f"{P}/blocks?page=-1", 400, "bad_parameter"),
    (f"{P}/blocks?page={10**40}", 400, "bad_parameter"),
    (f"{P}/blocks?page=abc", 400, "bad_parameter"),
    (f"{P}/blocks?page_size=1.5", 400, "bad_parameter"),
    (f"{P}/blocks?status=lost", 400, "bad_parameter"),
    (f"{P}/payments?page=NaN", 400, "bad_parameter"),
    (f"{P}/miners?page_size=%F0%9F%92%A9", 400, "bad_parameter"),
    (f"{P}/estimate", 400, "missing_parameter"),
    (f"{P}/estimate?hashrate=0", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=-5", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=nan", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=inf", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=1e999", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=abc", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=100&power_w=-1", 400, "bad_parameter"),
    (f"{P}/estimate?hashrate=100&coin_price=0x10", 400, "bad_parameter"),
    ("/api/v1/nothing", 404, "not_found"),
    ("/api/v2/pools", 404, "not_found"),
    ("/" + "a" * 3000, 414, "uri_too_long"),
    (f"{P}/miners/{'a' * 20000}", 414, "uri_too_long"),
])
async def test_bad_input_gets_a_json_4xx(client, path, status, code):
    assert_error(await get(client, path, status), status, code)


async def test_a_malformed_address_is_told_what_is_wrong(client):
    body = await get(client, f"{P}/miners/{ALICE[:-1]}b", 400)
    assert body["error"]["message"] == (
        "not a Litecoin regtest address: bech32 prefix rltc1 or base58 m/n/Q/2 expected "
        "(character 'b' is not bech32)")
    body = await get(client, f"{P}/miners/ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9", 400)
    assert body["error"]["message"].endswith("(this is a Litecoin mainnet address)")


async def test_page_size_is_clamped(client):
    assert (await get(client, f"{P}/blocks?page_size=100000"))["page_size"] == 100
    assert (await get(client, f"{P}/blocks?page_size=0"))["page_size"] == 1
    assert (await get(client, f"{P}/payments?page_size=-7"))["page_size"] == 1


async def test_other_methods_get_a_json_405(client):
    response = await client.post(P, data=b"{}")
    assert response.status == 405
    assert_error(orjson.loads(await response.read()), 405, "method_not_allowed")


async def test_a_database_that_cannot_answer_gives_503_not_500(db, seeded):
    client = await client_for(db)
    try:
        await db.execute("ALTER TABLE balances RENAME TO balances_away")
        assert_error(await get(client, f"{P}/miners/{ALICE}", 503), 503, "unavailable")
    finally:
        await db.execute("ALTER TABLE balances_away RENAME TO balances")
        await client.close()


# -- rate limit, CORS ----------------------------------------------------------------------------------

async def test_rate_limit_answers_429_with_retry_after(db, seeded):
    client = await client_for(db, rate_limit_per_s=1, rate_limit_burst=3)
    try:
        statuses = [(await client.get(P)).status for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        response = await client.get(P)
        assert int(response.headers["Retry-After"]) >= 1
        assert_error(orjson.loads(await response.read()), 429, "rate_limited")
        assert (await client.get("/metrics")).status == 200  # scrapes are not limited
        metrics = await (await client.get("/metrics")).text()
        assert "quarry_api_rate_limited_total 3.0" in metrics
    finally:
        await client.close()


async def test_rate_limit_by_forwarded_for_only_when_trusted(db, seeded):
    client = await client_for(db, rate_limit_per_s=1, rate_limit_burst=1, trust_forwarded_for=True)
    try:
        assert (await client.get(P, headers={"X-Forwarded-For": "1.1.1.1, 10.0.0.1"})).status == 200
        assert (await client.get(P, headers={"X-Forwarded-For": "10.0.0.2"})).status == 200
        assert (await client.get(P, headers={"X-Forwarded-For": "2.2.2.2, 10.0.0.1"})).status == 429
    finally:
        await client.close()


async def test_a_trusted_network_is_not_limited_with_the_public(db, seeded):
    # The test client comes from 127.0.0.1: the operator's own monitoring on the pool's machine.
    client = await client_for(db, rate_limit_per_s=1, rate_limit_burst=2, trusted_networks=["127.0.0.0/8"])
    try:
        assert {(await client.get(P)).status for _ in range(20)} == {200}
    finally:
        await client.close()


async def test_a_trusted_network_with_its_own_limit(db, seeded):
    client = await client_for(db, rate_limit_per_s=1, rate_limit_burst=2, trusted_networks=[
        {"network": "127.0.0.0/8", "rate_limit_per_s": 1, "rate_limit_burst": 5}])
    try:
        statuses = [(await client.get(P)).status for _ in range(7)]
        assert statuses == [200] * 5 + [429] * 2
    finally:
        await client.close()


async def test_trusted_networks_behind_a_proxy_by_forwarded_for(db, seeded):
    client = await client_for(db, rate_limit_per_s=1, rate_limit_burst=1, trust_forwarded_for=True,
                              trusted_networks=["10.0.0.0/8", "2001:db8::/32"])
    try:
        for hop in ("10.1.2.3", "2001:db8::7", "::ffff:10.9.9.9"):
            statuses = {(await client.get(P, headers={"X-Forwarded-For": f"203.0.113.9, {hop}"})).status
                        for _ in range(5)}
            assert statuses == {200}, hop
        public = [(await client.get(P, headers={"X-Forwarded-For": "203.0.113.9"})).status for _ in range(3)]
        assert public == [200, 429, 429]
        # A hop that is not an IP address is a public client.
        junk = [(await client.get(P, headers={"X-Forwarded-For": "10.0.0.1x"})).status for _ in range(2)]
        assert junk == [200, 429]
    finally:
        await client.close()


def test_rate_limits_pick_the_most_specific_network():
    now = [0.0]
    limits = RateLimits(1.0, 1, (TrustedNetwork(ipaddress.ip_network("10.0.0.0/8")),
                                 TrustedNetwork(ipaddress.ip_network("10.5.0.0/16"), 1.0, 3)),
                        clock=lambda: now[0])
    assert [limits.take("10.9.0.1") for _ in range(10)] == [0.0] * 10                # exempt
    assert [limits.take("10.5.0.1") == 0 for _ in range(4)] == [True, True, True, False]   # its own limit
    assert [limits.take("192.0.2.1") == 0 for _ in range(2)] == [True, False]            # the public's
    assert limits.take("not an address") == 0 and limits.take("not an address") > 0


def test_rate_limiter_refills_and_bounds_its_memory():
    now = [0.0]
    limiter = RateLimiter(2.0, 2, max_clients=4, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0
    for n in range(20):
        limiter.take(f"client{n}")
    assert len(limiter.buckets) <= 4


async def test_cors_allows_the_configured_origins_only(db, seeded):
    client = await client_for(db, cors_origins=["https://dash.example"])
    try:
        response = await client.get(P, headers={"Origin": "https://dash.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "https://dash.example"
        response = await client.get(P, headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in response.headers
        preflight = await client.options(P, headers={"Origin": "https://dash.example",
                                                     "Access-Control-Request-Method": "GET"})
        assert preflight.status == 204 and "GET" in preflight.headers["Access-Control-Allow-Methods"]
        refused = await client.options(P, headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "GET"})
        assert refused.status == 403
        missing = await client.get("/api/v1/pools/nope", headers={"Origin": "https://dash.example"})
        assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    finally:
        await client.close()
    client = await client_for(db, cors_origins=["*"])
    try:
        response = await client.get(P, headers={"Origin": "https://anyone.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await client.close()


# -- the OpenAPI document, the feed, the metrics ---------------------------------------------------------

async def test_openapi_document_matches_the_routes(client):
    document = await get(client, "/api/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    documented = {path for path, item in document["paths"].items() if "get" in item}
    routed = {resource.canonical for resource in client.app.router.resources()}
    assert documented == routed - {path for path, _ in DASHBOARD_ROUTES} == {path for path, _ in ROUTES}
    for path, item in document["paths"].items():
        in_path = {parameter["name"] for parameter in item["get"]["parameters"] if parameter["in"] == "path"}
        assert in_path == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
    schemas = document["components"]["schemas"]
    refs = orjson.dumps(document).decode().count("#/components/schemas/")
    assert refs and all(name in schemas for name in ("Pool", "Miner", "Block", "Payment", "Proof", "Error"))


async def test_json_shapes_follow_the_openapi_schemas(client):
    import jsonschema_rs

    document = await get(client, "/api/v1/openapi.json")
    components = document["components"]

    def check(schema_name, body):
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
        jsonschema_rs.validate(schema, body)

    check("Pools", await get(client, "/api/v1/pools"))
    check("Pool", await get(client, P))
    check("Performance", await get(client, f"{P}/performance"))
    check("BlockPage", await get(client, f"{P}/blocks"))
    check("Payout", await get(client, f"{P}/blocks/100/payout"))
    check("PaymentPage", await get(client, f"{P}/payments"))
    check("MinerPage", await get(client, f"{P}/miners"))
    check("Miner", await get(client, f"{P}/miners/{ALICE}"))
    check("Proof", await get(client, f"{P}/miners/{ALICE}/proof/100"))
    check("MinerPerformance", await get(client, f"{P}/miners/{ALICE}/performance"))
    check("Estimate", await get(client, f"{P}/estimate?hashrate=5e6&coin_price=3"))
    check("Error", await get(client, f"{P}/miners/x", 400))


async def test_live_feed_sends_blocks_payments_and_hashrate(db, client):
    feed = client.app[FEED]
    feed.poll_s = 0.1
    response = await client.get(f"{P}/events")
    assert response.status == 200 and response.content_type == "text/event-stream"
    assert await response.content.readline() == b"retry: 5000\n"
    for _ in range(100):
        if feed._since is not None:
            break
        await asyncio.sleep(0.05)
    await db.execute("UPDATE blocks SET status = 'confirmed', updated = now() WHERE height = 101")
    await db.execute("INSERT INTO payments (pool, status, txid, amount, payees) VALUES ($1, 'broadcast', $2, 7, 1)",
                     POOL, "cd" * 32)
    events = {}
    async with asyncio.timeout(10):
        while len(events) < 3:
            line = await response.content.readline()
            if line.startswith(b"event: "):
                name = line[7:].strip().decode()
                data = await response.content.readline()
                events[name] = orjson.loads(data[6:])
    assert events["block"]["height"] == 101 and events["block"]["status"] == "confirmed"
    assert events["payment"]["txid"] == "cd" * 32 and events["payment"]["amount"] == 7
    assert events["hashrate"]["workers_online"] == 3
    response.close()
    assert_error(await get(client, "/api/v1/pools/nope/events", 404), 404, "unknown_pool")


async def test_metrics_show_requests_and_the_ledger(client):
    await get(client, P)
    await get(client, f"{P}/miners/x", 400)
    response = await client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    assert 'quarry_api_requests_total{route="/api/v1/pools/{pool}",status="200"} 1.0' in text
    assert 'quarry_api_requests_total{route="/api/v1/pools/{pool}/miners/{address}",status="400"} 1.0' in text
    assert 'quarry_blocks{status="orphaned"} 1.0' in text and 'quarry_blocks{status="confirmed"} 1.0' in text
    assert 'quarry_payments{status="confirmed"} 1.0' in text
    assert "quarry_workers_online 3.0" in text and "quarry_api_request_seconds_bucket" in text


async def test_stale_candidates_are_not_the_pools_blocks(db, seeded):
    """Solutions found after the pool knew the tip had moved are stored as stale candidates: no orphan,
    no block found, no pending reward of the pool, until the chain takes one (then it is the pool's)."""
    for height, status, digit in ((102, "pending", "a"), (101, "orphaned", "b"), (98, "confirmed", "c")):
        await db.execute("""INSERT INTO blocks (pool, height, hash, status, reward, finder_address, stale)
                            VALUES ($1, $2, $3, $4, 7, $5, true)""", POOL, height, digit * 64, status, ALICE)
    client = await client_for(db)
    try:
        pool = await get(client, P)
        assert pool["blocks_found"] == 3  # the pending and the confirmed seeded, and the stale one taken
        assert pool["last_block"]["hash"] == f"{101:064x}"
        page = await get(client, f"{P}/blocks")
        assert page["total"] == 4 and [block["height"] for block in page["items"]] == [101, 100, 99, 98]
        assert (await get(client, f"{P}/blocks?status=orphaned"))["total"] == 1
        text = await (await client.get("/metrics")).text()
        assert 'quarry_blocks{status="orphaned"} 1.0' in text
        assert 'quarry_blocks{status="confirmed"} 2.0' in text
        assert 'quarry_blocks{status="pending"} 1.0' in text
        assert 'quarry_stale_candidates{status="orphaned"} 1.0' in text
        assert 'quarry_stale_candidates{status="pending"} 1.0' in text
    finally:
        await client.close()
