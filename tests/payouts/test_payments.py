"""Payments through a real regtest litecoind wallet (payouts.payments, ``pool pay``).

Every test ends with the same two checks: the receiving wallet's own transaction list shows each
miner paid exactly once with the exact amount, and the ledger invariant holds (journal == balances,
each payment's journal entries match its outputs).  Crashes are real: ``pool pay --once`` runs in a
subprocess that SIGKILLs itself at a named step (``QUARRY_FAILPOINT``).
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from payouts.ledger import check_invariant
from payouts.money import coins_to_satoshis
from payouts.payments import FAILPOINT_ENV, PaymentPolicy, PaymentSender
from pool.devtools.regtest import RegtestNetwork
from pool.families import load_family
from pool.localnet import free_loopback_ports
from pool.rpc.client import DaemonClient
from share_validator.bitcoin.address import address_to_script, bech32_encode_segwit
from share_validator.bitcoin.coins import get_coin

BITCOIN = load_family("bitcoin")

POOL = "litecoin-regtest"
COIN = get_coin(POOL)
COIN_SATS = 100_000_000


@pytest.fixture(scope="module")
def network():
    with RegtestNetwork() as net:
        net.generate(101)  # mature coins in node 0's wallet, to fund each test's payment wallet
        yield net


class Wallets:
    """A paying wallet (the pool's) and a receiving wallet (the miners'), fresh for each test."""

    def __init__(self, net: RegtestNetwork, funds: str | None = "10") -> None:
        token = secrets.token_hex(4)
        self.net = net
        self.payer = f"payer_{token}"
        self.miners = f"miners_{token}"
        net.rpc(0, "createwallet", self.payer)
        net.rpc(0, "createwallet", self.miners)
        if funds:
            self.fund(funds)

    def fund(self, coins: str, *, mine: bool = True) -> None:
        address = self.net.rpc(0, "getnewaddress", "", "bech32", wallet=self.payer)
        self.net.rpc(0, "sendtoaddress", address, coins, wallet="pool")
        if mine:
            self.net.generate(1)

    def new_address(self) -> str:
        return str(self.net.rpc(0, "getnewaddress", "", "bech32", wallet=self.miners))

    @property
    def url(self) -> str:
        return self.net.rpc_url(0, wallet=self.payer)

    def received(self) -> dict[str, list[int]]:
        """address -> the amounts it received, from the miners' wallet (conflicted ones left out)."""
        result: dict[str, list[int]] = {}
        for tx in self.net.rpc(0, "listtransactions", "*", 10_000, 0, True, wallet=self.miners):
            if tx["category"] == "receive" and tx["confirmations"] >= 0:
                result.setdefault(tx["address"], []).append(coins_to_satoshis(tx["amount"]))
        return result


async def credit(db, amounts: dict[str, int]) -> None:
    """Balances as the payout processor leaves them: a journal entry and a balance for each."""
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO journal (pool, address, amount, reason) "
            "SELECT $1, a, m, 'adjustment' FROM unnest($2::text[], $3::bigint[]) AS e (a, m)",
            POOL, list(amounts), list(amounts.values()))
        await connection.execute(
            "INSERT INTO balances AS b (pool, address, amount) "
            "SELECT $1, a, m FROM unnest($2::text[], $3::bigint[]) AS e (a, m) "
            "ON CONFLICT (pool, address) DO UPDATE SET amount = b.amount + EXCLUDED.amount",
            POOL, list(amounts), list(amounts.values()))


async def balances(db) -> dict[str, int]:
    return {r["address"]: r["amount"] for r in await db.fetch("SELECT address, amount FROM balances WHERE pool = $1",
                                                            POOL)}


async def assert_ledger_ok(db) -> None:
    async with db.acquire() as connection:
        assert await check_invariant(connection, POOL) == []


def make_sender(db, wallet: DaemonClient, **policy) -> PaymentSender:
    settings = {"minimum_payout": 100_000, "payment_confirmations": 1, "conflict_confirmations": 1, **policy}
    return PaymentSender(db, wallet, POOL, lambda a: address_to_script(COIN, a), PaymentPolicy(**settings),
                         rpc_timeout=5.0)


async def generate(net: RegtestNetwork, count: int = 1) -> None:
    await asyncio.to_thread(net.generate, count)


# -- the happy paths -----------------------------------------------------------------------------------


async def test_due_balances_are_paid_once_and_followed_to_confirmation(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    m1, m2, small = [await asyncio.to_thread(wallets.new_address) for _ in range(3)]
    await credit(db, {m1: 123_456_789, m2: 50_000_000, small: 99_999, "pool": 7 * COIN_SATS})
    async with DaemonClient([wallets.url]) as wallet:
        sender = make_sender(db, wallet)
        run = await sender.run_once()
        assert len(run.paid) == 1 and run.alerts == []
        payment = await db.fetchrow("SELECT * FROM payments WHERE id = $1", run.paid[0])
        assert payment["status"] == "broadcast" and payment["payees"] == 2 and payment["amount"] == 173_456_789
        assert payment["fee_paid_by"] == "pool" and payment["fee"] > 0
        assert await balances(db) == {m1: 0, m2: 0, small: 99_999, "pool": 7 * COIN_SATS}
        assert await sender.run_once() == type(run)(reserve=None)  # nothing due, nothing changes
        await generate(network)
        run = await sender.run_once()
        assert run.changed == {payment["id"]: "confirmed"} and run.paid == []
    received = await asyncio.to_thread(wallets.received)
    assert received == {m1: [123_456_789], m2: [50_000_000]}
    wallet_tx = await asyncio.to_thread(network.rpc, 0, "gettransaction", payment["txid"], wallet=wallets.payer)
    assert -coins_to_satoshis(wallet_tx["fee"]) == payment["fee"]
    paid = {r["address"]: r["paid"] for r in await db.fetch("SELECT address, paid FROM balances")}
    assert paid[m1] == 123_456_789 and paid[m2] == 50_000_000
    await assert_ledger_ok(db)


async def test_miners_paying_the_fee_receive_their_balance_less_their_part(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    miners = [await asyncio.to_thread(wallets.new_address) for _ in range(3)]
    amounts = dict(zip(miners, [30_000_001, 20_000_000, 10_000_003]))
    await credit(db, amounts)
    async with DaemonClient([wallets.url]) as wallet:
        run = await make_sender(db, wallet, fee_paid_by="miners").run_once()
    payment = await db.fetchrow("SELECT * FROM payments WHERE id = $1", run.paid[0])
    outputs = {r["address"]: (r["amount"], r["debited"]) for r in
               await db.fetch("SELECT * FROM payment_outputs WHERE payment_id = $1", payment["id"])}
    assert {a: debited for a, (_, debited) in outputs.items()} == amounts
    assert sum(debited - amount for amount, debited in outputs.values()) == payment["fee"] > 0
    received = await asyncio.to_thread(wallets.received)
    assert received == {a: [amount] for a, (amount, _) in outputs.items()}
    assert set((await balances(db)).values()) == {0}
    fees = await db.fetch("SELECT address, amount FROM journal WHERE reason = 'payment_fee'")
    assert sorted(-r["amount"] for r in fees) == sorted(d - a for a, d in outputs.values())
    await assert_ledger_ok(db)


async def test_large_batches_are_split(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    miners = [await asyncio.to_thread(wallets.new_address) for _ in range(5)]
    await credit(db, {m: 1_000_000 + i for i, m in enumerate(miners)})
    async with DaemonClient([wallets.url]) as wallet:
        run = await make_sender(db, wallet, max_payees=2).run_once()
    assert len(run.paid) == 3
    assert [r["payees"] for r in await db.fetch("SELECT payees FROM payments ORDER BY id")] == [2, 2, 1]
    received = await asyncio.to_thread(wallets.received)
    assert received == {m: [1_000_000 + i] for i, m in enumerate(miners)}
    await assert_ledger_ok(db)


async def test_a_miner_minimum_payout_is_respected(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    patient, eager = [await asyncio.to_thread(wallets.new_address) for _ in range(2)]
    await credit(db, {patient: 5_000_000, eager: 5_000_000})
    await db.execute("INSERT INTO miner_settings (pool, address, minimum_payout) VALUES ($1, $2, $3)",
                     POOL, patient, 6_000_000)
    async with DaemonClient([wallets.url]) as wallet:
        run = await make_sender(db, wallet).run_once()
    assert len(run.paid) == 1
    assert await asyncio.to_thread(wallets.received) == {eager: [5_000_000]}
    assert (await balances(db))[patient] == 5_000_000


# -- refusals ------------------------------------------------------------------------------------------


async def test_an_invalid_payee_is_skipped_with_an_alert_and_the_others_are_paid(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    good = await asyncio.to_thread(wallets.new_address)
    mainnet = bech32_encode_segwit("ltc", 0, bytes(20))  # a valid Litecoin address, of another network
    await credit(db, {good: 2_000_000, mainnet: 3_000_000, "not an address": 4_000_000})
    async with DaemonClient([wallets.url]) as wallet:
        run = await make_sender(db, wallet).run_once()
    assert len(run.paid) == 1
    assert sorted(address for address, _ in run.skipped) == sorted([mainnet, "not an address"])
    assert len(run.alerts) == 2
    assert await asyncio.to_thread(wallets.received) == {good: [2_000_000]}
    assert await balances(db) == {good: 0, mainnet: 3_000_000, "not an address": 4_000_000}
    await assert_ledger_ok(db)


async def test_too_little_mature_money_builds_nothing(network, db):
    wallets = await asyncio.to_thread(Wallets, network, "1")
    await asyncio.to_thread(wallets.fund, "5", mine=False)  # 5 more, unconfirmed: not spendable yet
    miner = await asyncio.to_thread(wallets.new_address)
    await credit(db, {miner: 2 * COIN_SATS})
    async with DaemonClient([wallets.url]) as wallet:
        run = await make_sender(db, wallet).run_once()
    assert run.paid == [] and len(run.alerts) == 1 and "mature" in run.alerts[0]
    assert run.reserve.reserve == 4 * COIN_SATS
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    assert await balances(db) == {miner: 2 * COIN_SATS}
    await assert_ledger_ok(db)


async def test_payments_stop_rather_than_let_the_reserve_go_negative(network, db):
    wallets = await asyncio.to_thread(Wallets, network, "1")
    miner = await asyncio.to_thread(wallets.new_address)
    await credit(db, {miner: 60_000_000, "pool": 50_000_000})  # owed 1.1, held 1.0
    async with DaemonClient([wallets.url]) as wallet:
        sender = make_sender(db, wallet)
        run = await sender.run_once()
        assert run.paid == [] and "reserve" in run.alerts[0] and run.reserve.reserve == -10_000_000
        reserve = await sender.reserve()
    assert reserve.as_dict() == {"wallet": COIN_SATS, "trusted": COIN_SATS, "pending": 0, "immature": 0,
                                 "owed": 110_000_000, "reserve": -10_000_000}
    assert await db.fetchval("SELECT count(*) FROM payments") == 0


# -- timeouts, concurrency, crashes ---------------------------------------------------------------------


class HoldingProxy:
    """A JSON-RPC proxy in front of the node: forwards every call, but for the methods in ``hold``
    it never answers (the node did the work; the caller times out)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.hold: set[str] = set()
        self.held: list[str] = []
        self.port = free_loopback_ports(1)[0]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        method = json.loads(body).get("method")
        async with aiohttp.ClientSession() as session:
            async with session.post(self.target + request.path.lstrip("/"), data=body,
                                    headers={"Authorization": request.headers.get("Authorization", ""),
                                             "Content-Type": "application/json"}) as reply:
                payload, status = await reply.read(), reply.status
        if method in self.hold:
            self.held.append(method)
            await asyncio.sleep(3600)
        return web.Response(body=payload, status=status, content_type="application/json")

    async def __aenter__(self):
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def test_a_broadcast_timeout_makes_the_payment_unknown_until_reconciled(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    miner = await asyncio.to_thread(wallets.new_address)
    await credit(db, {miner: 12_345_678})
    node = f"http://127.0.0.1:{network.nodes[0].rpc_port}/"
    async with HoldingProxy(node) as proxy:
        user, password = network.rpc_user, network.rpc_password
        url = f"http://{user}:{password}@127.0.0.1:{proxy.port}/wallet/{wallets.payer}"
        async with DaemonClient([url]) as wallet:
            sender = make_sender(db, wallet)
            sender.rpc_timeout = 2.0
            proxy.hold = {"sendrawtransaction"}
            run = await sender.run_once()
            assert proxy.held == ["sendrawtransaction"]
            payment_id = run.paid[0]
            assert run.changed == {payment_id: "unknown"} and "unknown" in run.alerts[0]
            # The daemon did broadcast it; a second run reconciles by txid and sends nothing new.
            proxy.hold = set()
            run = await sender.run_once()
            assert run.changed == {payment_id: "broadcast"} and run.paid == []
            await generate(network)
            run = await sender.run_once()
            assert run.changed == {payment_id: "confirmed"} and run.paid == []
    assert await asyncio.to_thread(wallets.received) == {miner: [12_345_678]}
    assert await db.fetchval("SELECT broadcasts FROM payments WHERE id = $1", payment_id) == 0
    await assert_ledger_ok(db)


def pay_config(tmp_path, network, wallets, dsn, **payouts) -> str:
    settings = {"scheme": "pplns", "minimum_payout": "0.001", "payment_confirmations": 1,
                "conflict_confirmations": 1, "wallet": wallets.payer, **payouts}
    address = network.rpc(0, "getnewaddress", "", "bech32", wallet=wallets.payer)
    lines = [f'[pool]\ncoin = "{POOL}"\naddress = "{address}"\ndata_dir = "{tmp_path}"\nlog_level = "INFO"',
             f'[[daemons]]\nurl = "{network.rpc_url(0)}"', "[stratum]\n[[stratum.ports]]\nport = 3333",
             f'[database]\ndsn = "{dsn}"', "[payouts]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path = tmp_path / "pool.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def pay(config: str, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != FAILPOINT_ENV}
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.run([sys.executable, "-m", "pool.cli", "pay", "-c", config, "--once"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("failpoint", ["payment.after_build", "payment.after_store", "payment.after_broadcast",
                                       "payment.after_track"])
async def test_a_crash_at_any_step_pays_each_miner_exactly_once(network, db, dsn, tmp_path, failpoint):
    wallets = await asyncio.to_thread(Wallets, network)
    miners = [await asyncio.to_thread(wallets.new_address) for _ in range(3)]
    amounts = dict(zip(miners, [11_111_111, 22_222_222, 33_333_333]))
    await credit(db, amounts)
    config = await asyncio.to_thread(pay_config, tmp_path, network, wallets, dsn)
    if failpoint == "payment.after_track":
        assert (await asyncio.to_thread(pay, config)).returncode == 0
        await generate(network)
    crashed = await asyncio.to_thread(pay, config, failpoint)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    stored = await db.fetchval("SELECT count(*) FROM payments")
    assert stored == (0 if failpoint == "payment.after_build" else 1)
    for _ in range(3):  # restart, and again: reconciliation is idempotent
        again = await asyncio.to_thread(pay, config)
        assert again.returncode == 0, again.stdout + again.stderr
        await generate(network)
    assert await asyncio.to_thread(wallets.received) == {a: [amount] for a, amount in amounts.items()}
    rows = await db.fetch("SELECT status FROM payments")
    assert [r["status"] for r in rows] == ["confirmed"]
    assert set((await balances(db)).values()) == {0}
    await assert_ledger_ok(db)


async def test_two_payment_workers_started_at_once_pay_once(network, db, dsn, tmp_path):
    wallets = await asyncio.to_thread(Wallets, network)
    miners = [await asyncio.to_thread(wallets.new_address) for _ in range(4)]
    amounts = {m: 10_000_000 * (i + 1) for i, m in enumerate(miners)}
    await credit(db, amounts)
    config = await asyncio.to_thread(pay_config, tmp_path, network, wallets, dsn)
    first, second = await asyncio.gather(asyncio.to_thread(pay, config), asyncio.to_thread(pay, config))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    outcomes = sorted(json.loads(p.stdout.strip().splitlines()[-1])["locked_out"] for p in (first, second))
    assert outcomes in ([False, True], [False, False])  # one waits out the other, or they run in turn
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert await asyncio.to_thread(wallets.received) == {a: [amount] for a, amount in amounts.items()}
    await assert_ledger_ok(db)


async def test_a_stored_payment_whose_inputs_were_spent_elsewhere_fails_and_is_returned(network, db, dsn, tmp_path):
    wallets = await asyncio.to_thread(Wallets, network, "2")
    miner = await asyncio.to_thread(wallets.new_address)
    await credit(db, {miner: 50_000_000})
    config = await asyncio.to_thread(pay_config, tmp_path, network, wallets, dsn)
    assert (await asyncio.to_thread(pay, config, "payment.after_store")).returncode == -9
    # Before the restart, everything in the paying wallet is swept elsewhere (and mined).
    sink = await asyncio.to_thread(network.rpc, 0, "getnewaddress", "", "bech32", wallet="pool")
    await asyncio.to_thread(network.rpc, 0, "sendtoaddress", sink, "2", "", "", True, wallet=wallets.payer)
    await generate(network)
    result = await asyncio.to_thread(pay, config)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(summary["changed"].values()) == ["failed"]
    assert await db.fetchval("SELECT status FROM payments") == "failed"
    assert await balances(db) == {miner: 50_000_000}
    assert await asyncio.to_thread(wallets.received) == {}
    await assert_ledger_ok(db)


async def _conflict(network: RegtestNetwork, wallets: Wallets, db, txid: str, *, pays_payees: bool) -> str:
    """Mine a transaction spending the inputs of the payment ``txid`` (in the mempool): either one
    that pays the same outputs with a higher fee (what a fee bump is), or one sending everything
    back to the wallet.  Litecoin Core 0.21 has no mempool replacement, so the conflicting
    transaction goes straight into a block (``generateblock``), as a double spend mined elsewhere would."""
    decoded = await asyncio.to_thread(network.rpc, 0, "decoderawtransaction",
                                      await asyncio.to_thread(network.rpc, 0, "getrawtransaction", txid))
    inputs = [{"txid": i["txid"], "vout": i["vout"]} for i in decoded["vin"]]
    total = Decimal(0)
    for i in inputs:
        prev = await asyncio.to_thread(network.rpc, 0, "gettransaction", i["txid"], wallet=wallets.payer)
        prev_tx = await asyncio.to_thread(network.rpc, 0, "decoderawtransaction", prev["hex"])
        total += prev_tx["vout"][i["vout"]]["value"]
    outputs = []
    if pays_payees:
        rows = await db.fetch("SELECT o.address, o.amount FROM payment_outputs o JOIN payments p ON p.id = o.payment_id "
                              "WHERE p.txid = $1", txid)
        outputs = [{r["address"]: str(Decimal(r["amount"]).scaleb(-8))} for r in rows]
        total -= sum(Decimal(r["amount"]).scaleb(-8) for r in rows)
    back = await asyncio.to_thread(network.rpc, 0, "getnewaddress", "", "bech32", wallet=wallets.payer)
    outputs.append({back: str(total - Decimal("0.001"))})
    unsigned = await asyncio.to_thread(network.rpc, 0, "createrawtransaction", inputs, outputs)
    signed = await asyncio.to_thread(network.rpc, 0, "signrawtransactionwithwallet", unsigned, wallet=wallets.payer)
    conflicting = await asyncio.to_thread(network.rpc, 0, "decoderawtransaction", signed["hex"])
    mined = await asyncio.to_thread(network.rpc, 0, "generateblock", network.mining_address, [signed["hex"]])
    await asyncio.to_thread(network.wait_for_tip, mined["hash"])
    return conflicting["txid"]


async def test_a_conflicted_payment_is_returned_then_paid_once(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    miner = await asyncio.to_thread(wallets.new_address)
    await credit(db, {miner: 40_000_000})
    async with DaemonClient([wallets.url]) as wallet:
        sender = make_sender(db, wallet)
        first = (await sender.run_once()).paid[0]
        txid = await db.fetchval("SELECT txid FROM payments WHERE id = $1", first)
        await _conflict(network, wallets, db, txid, pays_payees=False)
        run = await sender.run_once()  # returned (1 deep), then the balance is paid again
        assert run.changed[first] == "returned" and len(run.paid) == 1
        await generate(network)
        await sender.run_once()
    statuses = [r["status"] for r in await db.fetch("SELECT status FROM payments ORDER BY id")]
    assert statuses == ["returned", "confirmed"]
    assert await asyncio.to_thread(wallets.received) == {miner: [40_000_000]}
    assert await balances(db) == {miner: 0}
    await assert_ledger_ok(db)


async def test_a_mined_conflict_paying_the_same_outputs_is_the_same_payment(network, db):
    wallets = await asyncio.to_thread(Wallets, network)
    miner = await asyncio.to_thread(wallets.new_address)
    await credit(db, {miner: 40_000_000})
    async with DaemonClient([wallets.url]) as wallet:
        sender = make_sender(db, wallet)
        payment_id = (await sender.run_once()).paid[0]
        txid = await db.fetchval("SELECT txid FROM payments WHERE id = $1", payment_id)
        replacement = await _conflict(network, wallets, db, txid, pays_payees=True)
        run = await sender.run_once()
        assert run.changed == {payment_id: "confirmed"} and run.paid == []
    row = await db.fetchrow("SELECT txid, status, detail FROM payments WHERE id = $1", payment_id)
    assert row["txid"] == replacement and row["status"] == "confirmed" and txid in row["detail"]
    assert await asyncio.to_thread(wallets.received) == {miner: [40_000_000]}
    await assert_ledger_ok(db)


async def test_a_reorg_of_an_immature_block_leaves_nothing_credited_and_nothing_paid(network, db):
    """Blocks are credited only once mature, so a block reorganised away while immature never
    reaches a balance: there is nothing to reverse and nothing is ever paid for it."""
    from datetime import datetime

    from payouts.fees import FeeConfig
    from payouts.processor import PayoutProcessor
    from pool.chain.tracker import BlockTracker

    wallets = await asyncio.to_thread(Wallets, network)
    miner = await asyncio.to_thread(wallets.new_address)
    ours = (await asyncio.to_thread(network.generate, 1))[0]
    height = await asyncio.to_thread(network.height)
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, actual_difficulty, "
        "network_difficulty, height, coinbase_value, node_id, ip, is_block) "
        "VALUES ('01aa', $1, $2, $3, 'rig', 1.0, 2.0, 0.5, $4, 1250000000, 1, '127.0.0.1', true)",
        now, POOL, miner, height)
    await db.execute("INSERT INTO blocks (pool, height, hash, reward, finder_address, created) "
                     "VALUES ($1, $2, $3, 1250000000, $4, $5)", POOL, height, ours, miner, now)
    processor = PayoutProcessor(db, POOL, "pplns", FeeConfig("1", []), 2)
    async with DaemonClient([network.rpc_url(0)]) as daemon, DaemonClient([wallets.url]) as wallet:
        tracker = BlockTracker(daemon, db, POOL, family=BITCOIN, maturity=100, orphan_confirmations=10)
        sender = make_sender(db, wallet, minimum_payout=1000)
        await generate(network, 50)
        await tracker.check()
        assert (await processor.run_once()).credited == [] and (await sender.run_once()).paid == []
        assert await db.fetchval("SELECT status FROM blocks WHERE hash = $1", ours) == "pending"
        for node in (0, 1):
            await asyncio.to_thread(network.rpc, node, "invalidateblock", ours)
        other = await asyncio.to_thread(network.rpc, 0, "getnewaddress", "", "bech32", wallet="pool")
        await asyncio.to_thread(network.rpc, 0, "generatetoaddress", 60, other)
        await asyncio.to_thread(network.rpc, 1, "reconsiderblock", ours)  # node 1 just follows
        await generate(network, 50)  # past the height at which ours would have matured
        await tracker.check()
        assert await db.fetchval("SELECT status FROM blocks WHERE hash = $1", ours) == "orphaned"
        assert (await processor.run_once()).credited == [] and (await sender.run_once()).paid == []
    assert await balances(db) == {} and await db.fetchval("SELECT count(*) FROM journal") == 0
    assert await asyncio.to_thread(wallets.received) == {}
    await assert_ledger_ok(db)
    for node in (0, 1):
        await asyncio.to_thread(network.rpc, node, "reconsiderblock", ours)
