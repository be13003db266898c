"""Paying miners through the daemon wallet, so that no crash, timeout or restart pays anyone twice.

The steps of one payment, and what a crash after each leaves behind:

1. **build**: ``createrawtransaction`` (the payees, in order) + ``fundrawtransaction`` (the wallet
   adds inputs and change; with ``tx_fee_paid_by = "miners"`` the fee is subtracted from the payees'
   outputs) + ``signrawtransactionwithwallet`` + ``decoderawtransaction`` (the txid, and a check of
   every output against what was asked).  Nothing is stored and nothing has left this process: the
   wallet does not lock the inputs and nobody else has the transaction.  A crash here loses nothing;
   the next run builds a fresh one.
2. **store**: one database transaction inserts the payment (``signed``, with the raw transaction and
   its txid), its outputs, the journal debits, and lowers the balances.  A crash before the commit
   leaves nothing; after it, the payment exists and the debit is done exactly once.
3. **broadcast**: ``sendrawtransaction`` of the stored bytes, once, never retried blindly.  "Already
   in the chain" counts as sent.  A timeout or a dropped connection makes the payment ``unknown``.
4. **follow**: each run looks every open payment up by txid in the wallet (``gettransaction``):
   ``confirmed`` at ``payment_confirmations``; a conflicted one (negative confirmations) is
   ``returned`` once its conflict is ``conflict_confirmations`` deep.

Reconciliation comes first in every run, and no new payment is built while a ``signed`` or
``unknown`` one is unresolved.  The rule that makes it safe: **the wallet that signs is the node we
broadcast to**, so a transaction that node ever accepted is in its wallet for good.  For a stored
payment the wallet does not know, sending the very same bytes again is always safe (same txid: it
can be mined once at most); if the node refuses them, nobody has ever had them, so the payment is
``failed`` and its debits are returned through the journal.

Pure parts (which balances are paid, how outputs map to debits) are plain functions; the
``PaymentSender`` wraps them with the wallet and the database.  Amounts are integer satoshis.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from payouts import merkle
from payouts.money import PayoutError, coins_to_satoshis, satoshis_to_coins
from payouts.wallet import WalletError, WalletUnreachable

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("signed", "broadcast", "unknown")
UNRESOLVED_STATUSES = ("signed", "unknown")

RPC_INVALID_ADDRESS_OR_KEY = -5     # gettransaction / getmempoolentry: not known
RPC_VERIFY_ALREADY_IN_CHAIN = -27

FAILPOINT_ENV = "QUARRY_FAILPOINT"


def failpoint(name: str) -> None:
    """Crash-injection hook: when the environment names this point, the process kills itself here
    (SIGKILL: no cleanup, no flush), as a power cut would.  A no-op otherwise."""
    if os.environ.get(FAILPOINT_ENV) == name:
        logger.warning("failpoint %s: killing the process", name)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


class PaymentError(PayoutError):
    """A payment cannot be built or stored as asked (nothing was stored)."""


# -- pure part ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentPolicy:
    minimum_payout: int = 10_000_000
    fee_paid_by: str = "pool"                  # or "miners"
    max_payees: int = 500
    max_tx_fee: int = 10_000_000
    payment_confirmations: int = 6
    conflict_confirmations: int = 10

    def __post_init__(self) -> None:
        if self.fee_paid_by not in ("pool", "miners"):
            raise PaymentError(f"fee_paid_by must be 'pool' or 'miners', not {self.fee_paid_by!r}")
        for name in ("minimum_payout", "max_payees", "max_tx_fee", "payment_confirmations",
                     "conflict_confirmations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PaymentError(f"{name} must be a positive int, not {value!r}")


@dataclass(frozen=True)
class Payee:
    address: str
    amount: int      # what leaves the balance


@dataclass(frozen=True)
class PaymentOutput:
    address: str
    amount: int      # what the miner receives
    debited: int     # what left the balance: amount + the miner's part of the fee

    @property
    def fee(self) -> int:
        return self.debited - self.amount


def choose_payees(balances: Iterable[tuple[str, int]], policy: PaymentPolicy, *,
                  minimums: Mapping[str, int] | None = None,
                  check_address: Callable[[str], str | None] = lambda address: None,
                  not_paid: Iterable[str] = ()) -> tuple[list[Payee], list[tuple[str, str]]]:
    """The balances to pay now, largest first, and the ones skipped with why.

    A balance is paid when it reaches the larger of the pool's minimum and the miner's own
    (``minimums``).  ``check_address(address)`` returns why an address cannot be paid, or None.
    Accounts in ``not_paid`` (the pool's own fee account) are left alone silently.
    """
    minimums = minimums or {}
    excluded = set(not_paid)
    payees: list[Payee] = []
    skipped: list[tuple[str, str]] = []
    for address, amount in balances:
        if address in excluded:
            continue
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise PaymentError(f"balance of {address} is not an int: {amount!r}")
        if amount < max(policy.minimum_payout, minimums.get(address) or 0):
            continue
        why = check_address(address)
        if why is not None:
            skipped.append((address, why))
            continue
        payees.append(Payee(address, amount))
    payees.sort(key=lambda payee: (-payee.amount, merkle.sort_key(payee.address)))
    return payees, skipped


def batches(payees: Sequence[Payee], size: int) -> list[list[Payee]]:
    return [list(payees[start:start + size]) for start in range(0, len(payees), size)]


def match_outputs(payees: Sequence[Payee], outputs: Sequence[tuple[bytes, int]], scripts: Sequence[bytes],
                  fee: int, fee_paid_by: str) -> list[PaymentOutput]:
    """Check a funded transaction's first ``len(payees)`` outputs (script, satoshis) against the
    payees (``scripts[i]`` is payee i's script) and say what each receives and is debited.

    Pool pays: every output is exactly the payee's amount.  Miners pay: each output is at most the
    amount and the outputs fall short of the amounts by exactly ``fee``.  Anything else raises.
    """
    if len(outputs) < len(payees) or len(outputs) > len(payees) + 1:
        raise PaymentError(f"{len(outputs)} outputs for {len(payees)} payees (and at most one change)")
    result = []
    for index, payee in enumerate(payees):
        script, value = outputs[index]
        if script != scripts[index]:
            raise PaymentError(f"output {index} does not pay {payee.address}")
        if value <= 0 or value > payee.amount:
            raise PaymentError(f"output {index} pays {value}, the balance is {payee.amount}")
        if fee_paid_by == "pool" and value != payee.amount:
            raise PaymentError(f"output {index} pays {value}, not the balance {payee.amount}")
        result.append(PaymentOutput(payee.address, value, payee.amount))
    if fee_paid_by == "miners" and sum(o.fee for o in result) != fee:
        raise PaymentError(f"the outputs fall short by {sum(o.fee for o in result)}, the fee is {fee}")
    return result


# -- the sender ----------------------------------------------------------------------------------------


def payment_lock_key(pool: str) -> int:
    digest = hashlib.sha256(b"quarry-payments\x00" + pool.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Reserve:
    """What the wallet holds against what the pool owes (satoshis)."""
    trusted: int          # confirmed, spendable
    pending: int          # unconfirmed
    immature: int         # coinbase not yet mature
    owed: int             # sum of all balances (miners, fee recipients, the pool's own account)

    @property
    def wallet(self) -> int:
        return self.trusted + self.pending + self.immature

    @property
    def reserve(self) -> int:
        return self.wallet - self.owed

    def as_dict(self) -> dict[str, int]:
        return {"wallet": self.wallet, "trusted": self.trusted, "pending": self.pending,
                "immature": self.immature, "owed": self.owed, "reserve": self.reserve}


@dataclass
class PaymentRun:
    locked_out: bool = False
    paid: list[int] = field(default_factory=list)              # payment ids built, stored and sent
    changed: dict[int, str] = field(default_factory=dict)      # payment id -> status reached this run
    skipped: list[tuple[str, str]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    reserve: Reserve | None = None


@dataclass
class BuiltPayment:
    raw_tx: str
    txid: str
    fee: int
    outputs: list[PaymentOutput]


def _satoshis(amount: Any) -> int:
    if isinstance(amount, int) and not isinstance(amount, bool):
        return coins_to_satoshis(amount)
    if isinstance(amount, str):
        amount = Decimal(amount)
    return coins_to_satoshis(amount)


def _coins(satoshis: int) -> Decimal:
    return satoshis_to_coins(satoshis)


class PaymentSender:
    """Pays the balances of ``pool_name`` through ``wallet`` (a ``DaemonClient`` on the wallet's
    node).  ``script_of(address)`` is the output script of an address (raises for an invalid one).
    ``run_once()`` reconciles the open payments, then pays what is due."""

    def __init__(self, db: asyncpg.Pool, wallet: Any, pool_name: str, script_of: Callable[[str], bytes],
                 policy: PaymentPolicy, *, pool_account: str = "pool", rpc_timeout: float = 30.0) -> None:
        self.db = db
        self.wallet = wallet
        self.pool_name = pool_name
        self.script_of = script_of
        self.policy = policy
        self.pool_account = pool_account
        self.rpc_timeout = rpc_timeout
        self._alerted: set[str] = set()

    # -- alerts ----------------------------------------------------------------------------------

    def _alert(self, run: PaymentRun, key: str, message: str) -> None:
        run.alerts.append(message)
        if key not in self._alerted:
            self._alerted.add(key)
            logger.error("ALERT: pool %s: %s", self.pool_name, message)

    def _clear(self, key: str) -> None:
        self._alerted.discard(key)

    # -- the run ---------------------------------------------------------------------------------

    async def run_once(self) -> PaymentRun:
        run = PaymentRun()
        async with self.db.acquire() as connection:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", payment_lock_key(self.pool_name)):
                logger.info("pool %s: another payment run holds the lock", self.pool_name)
                run.locked_out = True
                return run
            try:
                if await self.reconcile(connection, run):
                    await self.pay(connection, run)
            finally:
                if not connection.is_closed():
                    await connection.fetchval("SELECT pg_advisory_unlock($1)", payment_lock_key(self.pool_name))
        return run

    # -- reconciliation --------------------------------------------------------------------------

    async def reconcile(self, connection: asyncpg.Connection, run: PaymentRun) -> bool:
        """Bring every open payment up to date with the wallet; True when none is left unresolved
        (``signed`` or ``unknown``), so that new payments may be built."""
        open_payments = await connection.fetch(
            "SELECT * FROM payments WHERE pool = $1 AND status = ANY($2::text[]) ORDER BY id",
            self.pool_name, list(OPEN_STATUSES))
        resolved = True
        for payment in open_payments:
            try:
                status = await self._reconcile_one(connection, payment, run)
            except WalletError as error:
                self._alert(run, f"reconcile-{payment['id']}",
                            f"payment {payment['id']} ({payment['txid']}) cannot be looked up: {error}")
                status = payment["status"]
            if status in UNRESOLVED_STATUSES:
                resolved = False
        return resolved

    async def _wallet_transaction(self, txid: str) -> dict[str, Any] | None:
        try:
            return await self.wallet.call("gettransaction", txid, timeout=self.rpc_timeout)
        except WalletError as error:
            if error.code == RPC_INVALID_ADDRESS_OR_KEY:
                return None
            raise

    async def _in_mempool(self, txid: str) -> bool:
        try:
            await self.wallet.call("getmempoolentry", txid, timeout=self.rpc_timeout)
            return True
        except WalletError as error:
            if error.code == RPC_INVALID_ADDRESS_OR_KEY:
                return False
            raise

    async def _reconcile_one(self, connection: asyncpg.Connection, payment: asyncpg.Record,
                             run: PaymentRun) -> str:
        transaction = await self._wallet_transaction(payment["txid"])
        if transaction is None:
            # The wallet never knew it: these bytes never reached anyone.  Send them (again).
            return await self._broadcast(connection, payment, run)
        return await self._follow(connection, payment, transaction, run)

    async def _follow(self, connection: asyncpg.Connection, payment: asyncpg.Record,
                      transaction: Mapping[str, Any], run: PaymentRun) -> str:
        confirmations = int(transaction.get("confirmations", 0))
        if confirmations < 0:
            replacement = await self._paying_replacement(connection, payment, transaction)
            if replacement is not None:
                # A replacement that pays every output of this payment (a fee bump) is this payment.
                await connection.execute(
                    "UPDATE payments SET txid = $2, raw_tx = $3, detail = $4, updated = now() WHERE id = $1",
                    payment["id"], replacement["txid"], replacement["hex"], f"replaced {payment['txid']}")
                logger.warning("payment %d: %s was replaced by %s, which pays the same outputs",
                               payment["id"], payment["txid"], replacement["txid"])
                payment = await connection.fetchrow("SELECT * FROM payments WHERE id = $1", payment["id"])
                return await self._follow(connection, payment, replacement, run)
            depth = -confirmations
            if depth >= self.policy.conflict_confirmations:
                await self._return(connection, payment, "returned",
                                   f"conflicted {depth} blocks deep ({transaction.get('walletconflicts', [])})", run)
                return "returned"
            self._alert(run, f"conflict-{payment['id']}",
                        f"payment {payment['id']} ({payment['txid']}) is conflicted {depth} deep; its debits "
                        f"return at {self.policy.conflict_confirmations}")
            await self._set_status(connection, payment, "broadcast", confirmations, run)
            return "broadcast"
        if confirmations >= self.policy.payment_confirmations:
            await self._set_status(connection, payment, "confirmed", confirmations, run,
                                   block_hash=transaction.get("blockhash"))
            failpoint("payment.after_track")
            return "confirmed"
        if confirmations == 0 and not await self._in_mempool(payment["txid"]):
            # Known to the wallet but gone from the mempool (evicted, or the node restarted):
            # the same bytes again; refusal changes nothing here (the wallet knows it: never failed).
            try:
                await self.wallet.call("sendrawtransaction", payment["raw_tx"], timeout=self.rpc_timeout, retry=False)
                await connection.execute("UPDATE payments SET broadcasts = broadcasts + 1 WHERE id = $1", payment["id"])
            except WalletError as error:
                self._alert(run, f"rebroadcast-{payment['id']}",
                            f"payment {payment['id']} ({payment['txid']}) is out of the mempool and "
                            f"was refused again: {error}")
        await self._set_status(connection, payment, "broadcast", confirmations, run)
        return "broadcast"

    async def _paying_replacement(self, connection: asyncpg.Connection, payment: asyncpg.Record,
                                  transaction: Mapping[str, Any]) -> dict[str, Any] | None:
        """The wallet transaction conflicting with ``payment`` that pays all of its outputs, if any."""
        outputs = await connection.fetch("SELECT address, amount FROM payment_outputs WHERE payment_id = $1",
                                      payment["id"])
        wanted = {(self.script_of(row["address"]), row["amount"]) for row in outputs}
        for txid in transaction.get("walletconflicts", []):
            other = await self._wallet_transaction(txid)
            if other is None or int(other.get("confirmations", 0)) < 0:
                continue
            decoded = await self.wallet.call("decoderawtransaction", other["hex"], timeout=self.rpc_timeout)
            paid = {(bytes.fromhex(out["scriptPubKey"]["hex"]), _satoshis(out["value"])) for out in decoded["vout"]}
            if wanted <= paid:
                return {**other, "txid": txid}
        return None

    async def _broadcast(self, connection: asyncpg.Connection, payment: asyncpg.Record, run: PaymentRun) -> str:
        """Send the stored bytes once.  Returns the status reached."""
        try:
            await self.wallet.call("sendrawtransaction", payment["raw_tx"], timeout=self.rpc_timeout, retry=False)
        except WalletUnreachable as error:
            await self._set_status(connection, payment, "unknown", payment["confirmations"], run,
                                   detail=f"broadcast: {error}")
            self._alert(run, f"unknown-{payment['id']}",
                        f"payment {payment['id']} ({payment['txid']}) is unknown: {error}; reconciled by txid next run")
            return "unknown"
        except WalletError as error:
            if error.code == RPC_VERIFY_ALREADY_IN_CHAIN or "already" in error.message.lower():
                pass  # in the chain or in the mempool already: sent
            else:
                transaction = await self._wallet_transaction(payment["txid"])
                if transaction is not None:
                    return await self._follow(connection, payment, transaction, run)
                await self._return(connection, payment, "failed", f"refused by the daemon: {error}", run)
                self._alert(run, f"failed-{payment['id']}",
                            f"payment {payment['id']} ({payment['txid']}) was refused by the daemon and "
                            f"its debits are returned: {error}")
                return "failed"
        await connection.execute("UPDATE payments SET broadcasts = broadcasts + 1 WHERE id = $1", payment["id"])
        await self._set_status(connection, payment, "broadcast", max(payment["confirmations"], 0), run)
        self._clear(f"unknown-{payment['id']}")
        return "broadcast"

    async def _set_status(self, connection: asyncpg.Connection, payment: asyncpg.Record, status: str,
                          confirmations: int, run: PaymentRun, *, detail: str | None = None,
                          block_hash: str | None = None) -> None:
        await connection.execute(
            """UPDATE payments SET status = $2, confirmations = $3, detail = coalesce($4, detail),
                      block_hash = coalesce($5, block_hash), updated = now()
                WHERE id = $1 AND status = ANY($6::text[])""",
            payment["id"], status, confirmations, detail, block_hash, list(OPEN_STATUSES))
        if status != payment["status"]:
            run.changed[payment["id"]] = status
            logger.info("payment %d (%s): %s -> %s (%d confirmations)", payment["id"], payment["txid"],
                        payment["status"], status, confirmations)

    async def _return(self, connection: asyncpg.Connection, payment: asyncpg.Record, status: str, why: str,
                      run: PaymentRun) -> None:
        """The payment will never be mined: its debits go back to the balances, in one transaction."""
        async with connection.transaction():
            moved = await connection.fetchval(
                """UPDATE payments SET status = $2, detail = $3, updated = now()
                    WHERE id = $1 AND status = ANY($4::text[]) RETURNING id""",
                payment["id"], status, why, list(OPEN_STATUSES))
            if moved is None:
                return
            outputs = await connection.fetch(
                "SELECT address, amount, debited FROM payment_outputs WHERE payment_id = $1", payment["id"])
            outputs = sorted(outputs, key=lambda row: merkle.sort_key(row["address"]))
            addresses = [row["address"] for row in outputs]
            await connection.execute(
                """INSERT INTO journal (pool, address, amount, reason, payment_id)
                   SELECT $1, address, debited, 'payment_returned', $2
                     FROM unnest($3::text[], $4::bigint[]) AS e (address, debited)""",
                self.pool_name, payment["id"], addresses, [row["debited"] for row in outputs])
            await connection.execute(
                """UPDATE balances AS b SET amount = b.amount + d.debited, paid = b.paid - d.amount, updated = now()
                     FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS d (address, amount, debited)
                    WHERE b.pool = $1 AND b.address = d.address""",
                self.pool_name, addresses, [row["amount"] for row in outputs], [row["debited"] for row in outputs])
        run.changed[payment["id"]] = status
        logger.warning("payment %d (%s) %s: %s; %d satoshis returned to %d balances", payment["id"],
                       payment["txid"], status, why, sum(row["debited"] for row in outputs), len(outputs))

    # -- paying ----------------------------------------------------------------------------------

    async def reserve(self, connection: asyncpg.Connection | None = None) -> Reserve:
        """The wallet's balances against the sum of what the pool owes."""
        balances = await self.wallet.call("getbalances", timeout=self.rpc_timeout)
        mine = balances["mine"]
        if connection is None:
            owed = await self.db.fetchval("SELECT coalesce(sum(amount), 0) FROM balances WHERE pool = $1",
                                          self.pool_name)
        else:
            owed = await connection.fetchval("SELECT coalesce(sum(amount), 0) FROM balances WHERE pool = $1",
                                             self.pool_name)
        return Reserve(_satoshis(mine["trusted"]), _satoshis(mine.get("untrusted_pending", 0)),
                       _satoshis(mine.get("immature", 0)), int(owed))

    def _check_address(self, address: str) -> str | None:
        try:
            self.script_of(address)
        except Exception as error:  # noqa: BLE001 - any refusal of the decoder is a reason
            return f"not a payable address: {error}"
        return None

    async def pay(self, connection: asyncpg.Connection, run: PaymentRun) -> None:
        rows = await connection.fetch(
            """SELECT b.address, b.amount, s.minimum_payout FROM balances b
                 LEFT JOIN miner_settings s ON s.pool = b.pool AND s.address = b.address
                WHERE b.pool = $1 AND b.amount >= $2 AND b.address <> $3""",
            self.pool_name, self.policy.minimum_payout, self.pool_account)
        payees, skipped = choose_payees(
            ((row["address"], row["amount"]) for row in rows), self.policy,
            minimums={row["address"]: row["minimum_payout"] for row in rows if row["minimum_payout"]},
            check_address=self._check_address, not_paid=(self.pool_account,))
        for address, why in skipped:
            run.skipped.append((address, why))
            self._alert(run, f"payee-{address}", f"balance of {address!r} not paid: {why}")
        if not payees:
            return
        try:
            reserve = await self.reserve(connection)
        except WalletError as error:
            self._alert(run, "wallet", f"the wallet does not answer: {error}; nothing paid")
            return
        run.reserve = reserve
        if reserve.reserve < 0:
            self._alert(run, "reserve", f"the pool owes {reserve.owed} but its wallet holds {reserve.wallet} "
                                        f"(reserve {reserve.reserve}): payments stopped")
            return
        self._clear("reserve")
        total = sum(payee.amount for payee in payees)
        if reserve.trusted < total:
            self._alert(run, "funds", f"{total} satoshis are due to {len(payees)} payees but the wallet "
                                      f"has only {reserve.trusted} mature: no payment built")
            return
        self._clear("funds")
        for batch in batches(payees, self.policy.max_payees):
            try:
                built = await self._build(batch)
            except (WalletError, PaymentError) as error:
                self._alert(run, "build", f"a payment to {len(batch)} payees could not be built: {error}")
                return
            self._clear("build")
            failpoint("payment.after_build")
            if self.policy.fee_paid_by == "pool" and reserve.reserve - built.fee < 0:
                self._alert(run, "reserve", f"paying the fee {built.fee} would make the reserve negative: "
                                            "payments stopped")
                return
            try:
                payment = await self.store_payment(connection, built)
            except PaymentError as error:
                self._alert(run, "store", f"a payment could not be stored (nothing sent): {error}")
                return
            failpoint("payment.after_store")
            status = await self._broadcast(connection, payment, run)
            failpoint("payment.after_broadcast")
            run.paid.append(payment["id"])
            if status != "broadcast":
                return
            reserve.trusted -= sum(output.debited for output in built.outputs)

    async def _build(self, batch: list[Payee]) -> BuiltPayment:
        scripts = [self.script_of(payee.address) for payee in batch]
        outputs = [{payee.address: _coins(payee.amount)} for payee in batch]
        # Signals BIP125 replaceability, so that on a coin whose mempool allows it a stuck payment can
        # have its fee bumped (Litecoin Core 0.21 ignores it: it has no mempool replacement).  Any
        # conflicting transaction paying the same outputs is the same payment (``_paying_replacement``).
        unsigned = await self.wallet.call("createrawtransaction", [], outputs, timeout=self.rpc_timeout)
        options: dict[str, Any] = {"changePosition": len(batch), "replaceable": True}
        if self.policy.fee_paid_by == "miners":
            options["subtractFeeFromOutputs"] = list(range(len(batch)))
        funded = await self.wallet.call("fundrawtransaction", unsigned, options, timeout=self.rpc_timeout)
        fee = _satoshis(funded["fee"])
        if fee > self.policy.max_tx_fee:
            raise PaymentError(f"the wallet asks a fee of {fee} satoshis, more than max_tx_fee "
                               f"{self.policy.max_tx_fee}")
        signed = await self.wallet.call("signrawtransactionwithwallet", funded["hex"], timeout=self.rpc_timeout)
        if not signed.get("complete"):
            raise PaymentError(f"the wallet could not sign every input: {signed.get('errors')}")
        decoded = await self.wallet.call("decoderawtransaction", signed["hex"], timeout=self.rpc_timeout)
        vout = [(bytes.fromhex(out["scriptPubKey"]["hex"]), _satoshis(out["value"])) for out in decoded["vout"]]
        matched = match_outputs(batch, vout, scripts, fee, self.policy.fee_paid_by)
        return BuiltPayment(signed["hex"], decoded["txid"], fee, matched)

    async def store_payment(self, connection: asyncpg.Connection, built: BuiltPayment) -> asyncpg.Record:
        """Store the signed payment and debit the balances, all in one transaction."""
        outputs = sorted(built.outputs, key=lambda output: merkle.sort_key(output.address))
        addresses = [output.address for output in outputs]
        async with connection.transaction():
            current = {row["address"]: row["amount"] for row in await connection.fetch(
                "SELECT address, amount FROM balances WHERE pool = $1 AND address = ANY($2::text[]) "
                "ORDER BY address FOR UPDATE", self.pool_name, addresses)}
            for output in outputs:
                if current.get(output.address, 0) < output.debited:
                    raise PaymentError(f"the balance of {output.address} is {current.get(output.address, 0)}, "
                                       f"less than the {output.debited} to debit")
            payment = await connection.fetchrow(
                """INSERT INTO payments (pool, status, txid, raw_tx, amount, fee, fee_paid_by, payees)
                   VALUES ($1, 'signed', $2, $3, $4, $5, $6, $7) RETURNING *""",
                self.pool_name, built.txid, built.raw_tx, sum(o.amount for o in outputs), built.fee,
                self.policy.fee_paid_by, len(outputs))
            await connection.execute(
                """INSERT INTO payment_outputs (payment_id, address, amount, debited)
                   SELECT $1, address, amount, debited
                     FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS o (address, amount, debited)""",
                payment["id"], addresses, [o.amount for o in outputs], [o.debited for o in outputs])
            entries = [(o.address, -o.amount, "payment") for o in outputs]
            entries += [(o.address, -o.fee, "payment_fee") for o in outputs if o.fee]
            await connection.execute(
                """INSERT INTO journal (pool, address, amount, reason, payment_id)
                   SELECT $1, address, amount, reason, $2
                     FROM unnest($3::text[], $4::bigint[], $5::text[]) AS e (address, amount, reason)""",
                self.pool_name, payment["id"], [e[0] for e in entries], [e[1] for e in entries],
                [e[2] for e in entries])
            await connection.execute(
                """UPDATE balances AS b SET amount = b.amount - d.debited, paid = b.paid + d.amount, updated = now()
                     FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS d (address, amount, debited)
                    WHERE b.pool = $1 AND b.address = d.address""",
                self.pool_name, addresses, [o.amount for o in outputs], [o.debited for o in outputs])
        logger.info("payment %d stored: %s, %d payees, %d satoshis, fee %d paid by the %s", payment["id"],
                    built.txid, len(outputs), payment["amount"], built.fee, self.policy.fee_paid_by)
        return payment
