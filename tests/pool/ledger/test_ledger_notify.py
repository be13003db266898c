"""Ledger notifications (sql/006, sql/008) against PostgreSQL: a statement that changes money sends
one NOTIFY quarry_ledger per pool naming every miner it touched, "POOL ADDRESS ADDRESS ...", or ""
(everyone) when they do not fit in one notification; identical ones of a transaction arrive once."""
from __future__ import annotations

import asyncio

import pytest

POOL = "litecoin-regtest"
END = "-- end of test statements --"


def addresses(count: int, prefix: str = "rltc1q") -> list[str]:
    return [f"{prefix}{n:038d}" for n in range(count)]


@pytest.fixture
async def heard(db):
    """Runs statements in one transaction and returns the notifications they caused, in order."""
    listener = await db.acquire()
    payloads: asyncio.Queue[str] = asyncio.Queue()

    def on_notification(_connection, _pid, _channel, payload: str) -> None:
        payloads.put_nowait(payload)

    await listener.add_listener("quarry_ledger", on_notification)

    async def run(*statements: tuple) -> list[str]:
        async with db.acquire() as connection:
            async with connection.transaction():
                for statement in statements:
                    await connection.execute(*statement)
            # Delivered after everything this session committed before it.
            await connection.execute(f"NOTIFY quarry_ledger, '{END}'")
        got = []
        async with asyncio.timeout(10):
            while (payload := await payloads.get()) != END:
                got.append(payload)
        return got

    yield run
    await listener.remove_listener("quarry_ledger", on_notification)
    await db.release(listener)


def insert_balances(miners: list[str], pool: str = POOL) -> tuple:
    return ("INSERT INTO balances (pool, address, amount) SELECT $1, unnest($2::text[]), 100", pool, miners)


async def test_a_statement_over_many_miners_is_one_notification(heard):
    miners = addresses(60)
    assert await heard(insert_balances(miners[::-1])) == [" ".join([POOL, *miners])]  # sorted, each once
    assert await heard(("UPDATE balances SET amount = amount + 1 WHERE pool = $1 AND address = ANY($2)",
                        POOL, miners[:3])) == [" ".join([POOL, *miners[:3]])]
    assert await heard(("DELETE FROM balances WHERE address = $1", miners[59])) == [f"{POOL} {miners[59]}"]
    nobody = ("UPDATE balances SET amount = 0 WHERE address = 'nobody'",)
    assert await heard(nobody) == []  # no row, no notification


async def test_crediting_a_block_is_one_notification(heard):
    """Journal rows and balance updates for the same miners in one transaction: the two statements'
    notifications are the same, and PostgreSQL delivers it once."""
    miners = addresses(40)
    await heard(insert_balances(miners))
    credit = ("INSERT INTO journal (pool, address, amount, reason, block_hash) "
              "SELECT $1, unnest($2::text[]), 5, 'block_credit', 'ab'", POOL, miners)
    balances = ("INSERT INTO balances (pool, address, amount) SELECT $1, unnest($2::text[]), 5 ON CONFLICT "
                "(pool, address) DO UPDATE SET amount = balances.amount + excluded.amount", POOL, miners)
    assert await heard(credit, balances) == [" ".join([POOL, *miners])]


async def test_miners_of_two_pools_are_named_per_pool(heard):
    got = await heard(("INSERT INTO balances (pool, address, amount) VALUES ('a', 'x1', 1), ('b', 'y1', 1), "
                       "('a', 'x2', 1)",))
    assert sorted(got) == ["a x1 x2", "b y1"]


async def test_too_many_miners_for_one_notification_means_everyone(heard):
    miners = addresses(200)  # 200 x 45 bytes: over PostgreSQL's 8000-byte payload limit
    assert len(" ".join([POOL, *miners]).encode()) >= 8000
    assert await heard(insert_balances(miners)) == [""]
    fit = addresses(150, prefix="rltc1qz")
    assert await heard(insert_balances(fit)) == [" ".join([POOL, *fit])]


async def test_a_payment_names_its_payees_once(heard):
    payees = addresses(30)
    stored = await heard(
        ("INSERT INTO payments (id, pool, status, amount, payees) VALUES (77, $1, 'signed', 3000, 30)", POOL),
        ("INSERT INTO payment_outputs (payment_id, address, amount, debited) "
         "SELECT 77, unnest($1::text[]), 100, 100", payees),
    )
    assert stored == [" ".join([POOL, *payees])]
    assert await heard(("UPDATE payments SET status = 'broadcast', txid = 'aa' WHERE id = 77",)) == [
        " ".join([POOL, *payees])]
    assert await heard(("UPDATE payments SET confirmations = 3 WHERE id = 77",)) == []  # not on their pages
