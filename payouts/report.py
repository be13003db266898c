"""The payout report of a block: who gets what and why, reproducible byte for byte.

``PayoutReport.to_json_bytes()`` is the canonical form: JSON with sorted keys, no whitespace, ASCII
only, integers for satoshis and exact ratios as text (``"3/4"``, ``"2"``; ``fractions.Fraction``
lowest terms), percents as short decimal text (``"0.5"``).  Nothing in it depends on the clock or on
the order the shares were read in, so ``verify-block`` can recompute it from the stored shares and
compare bytes.  Its layout::

    {"block": {"finder_address", "hash", "height", "reward", "status"},
     "fees": {"pool_account", "pool_fee_percent", "pool_fee", "rounding_remainder", "pool_amount",
              "recipients": [{"address", "percent", "amount"}, ...]},
     "merkle_root": "<hex>",
     "miners": [{"address", "work", "share", "amount"}, ...],      # sorted by address (UTF-8 bytes)
     "notes": ["...", ...],
     "paid": true,
     "scheme": "pplns" | "prop" | "solo",
     "totals": {"fees", "miners", "paid"},
     "version": "quarry-payout-v1",
     "window": {"factor", "target_work", "work", "filled", "shares_counted", "newest_share_id",
                "oldest_share_id", "oldest_share_fraction"} | null}

A miner's ``work`` is the sum of credited difficulty / network difficulty over its shares in the
window (the oldest share possibly in part); ``share`` is work / window work, the part of the miners'
reward it gets before rounding down.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any

from payouts import merkle
from payouts.fees import FeeConfig, FeePayment
from payouts.money import PayoutError, decimal_text, fraction_text

if TYPE_CHECKING:
    from payouts.rounds import Block

REPORT_VERSION = "quarry-payout-v1"


@dataclass(frozen=True)
class Window:
    """The shares a PPLNS or PROP payout counted.

    For PPLNS ``target_work`` is the factor (N = factor x network difficulty, in units of expected
    blocks of work) and ``filled`` says whether the shares reached it; when not, the whole miners'
    part was shared over the shares there are.  For PROP there is no target and ``filled`` is True.
    ``oldest_share_fraction`` is the part of the oldest counted share's work that was counted (the
    share crossing the window boundary counts in part; 1 when it counted whole).
    """
    factor: Fraction | None
    target_work: Fraction | None
    work: Fraction
    filled: bool
    shares_counted: int
    newest_share_id: str
    oldest_share_id: str
    oldest_share_fraction: Fraction

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": None if self.factor is None else decimal_text(self.factor),
            "target_work": None if self.target_work is None else fraction_text(self.target_work),
            "work": fraction_text(self.work),
            "filled": self.filled,
            "shares_counted": self.shares_counted,
            "newest_share_id": self.newest_share_id,
            "oldest_share_id": self.oldest_share_id,
            "oldest_share_fraction": fraction_text(self.oldest_share_fraction),
        }


@dataclass(frozen=True)
class PayoutEntry:
    """One miner's payout: exact window work, exact share of the miners' reward, satoshis."""
    address: str
    work: Fraction
    share: Fraction
    amount: int

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "work": fraction_text(self.work),
                "share": fraction_text(self.share), "amount": self.amount}


@dataclass(frozen=True)
class PayoutReport:
    """What a scheme decided for one block.  Built by ``payouts.schemes``; checks its own totals.

    ``paid`` is False for an orphaned or rejected block: then every amount is 0 and ``entries``
    is empty.  When paid, miners_total + fees_total == block.reward exactly.
    """
    scheme: str
    block: Block
    fees: FeeConfig
    entries: tuple[PayoutEntry, ...]
    fee_payments: tuple[FeePayment, ...]
    pool_fee: int
    rounding_remainder: int
    window: Window | None
    paid: bool
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        keys = [merkle.sort_key(entry.address) for entry in self.entries]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise PayoutError("report entries must be distinct addresses in UTF-8 byte order")
        amounts = [entry.amount for entry in self.entries] + [p.amount for p in self.fee_payments]
        amounts += [self.pool_fee, self.rounding_remainder]
        if any(isinstance(a, bool) or not isinstance(a, int) or a < 0 for a in amounts):
            raise PayoutError(f"report amounts must be non-negative ints: {amounts}")
        expected = self.block.reward if self.paid else 0
        if self.total != expected:
            raise PayoutError(
                f"block {self.block.hash}: miners {self.miners_total} + fees {self.fees_total} "
                f"!= {expected}")

    @property
    def miners_total(self) -> int:
        return sum(entry.amount for entry in self.entries)

    @property
    def pool_amount(self) -> int:
        """What the pool fee account receives: the pool fee plus the rounding remainder."""
        return self.pool_fee + self.rounding_remainder

    @property
    def fees_total(self) -> int:
        return sum(payment.amount for payment in self.fee_payments) + self.pool_amount

    @property
    def total(self) -> int:
        return self.miners_total + self.fees_total

    def amounts(self) -> dict[str, int]:
        """Miner address -> satoshis, in leaf order."""
        return {entry.address: entry.amount for entry in self.entries}

    @cached_property
    def _levels(self) -> list[list[bytes]]:
        return merkle.tree_levels([(entry.address, entry.amount) for entry in self.entries])

    @cached_property
    def _index(self) -> dict[str, int]:
        return {entry.address: i for i, entry in enumerate(self.entries)}

    @property
    def merkle_root(self) -> str:
        return self._levels[-1][0].hex()

    def to_dict(self) -> dict[str, Any]:
        block = self.block
        return {
            "version": REPORT_VERSION,
            "scheme": self.scheme,
            "paid": self.paid,
            "block": {"height": block.height, "hash": block.hash, "status": block.status,
                      "reward": block.reward, "finder_address": block.finder_address},
            "fees": {
                "pool_account": self.fees.pool_account,
                "pool_fee_percent": decimal_text(self.fees.pool_fee_percent),
                "pool_fee": self.pool_fee,
                "rounding_remainder": self.rounding_remainder,
                "pool_amount": self.pool_amount,
                "recipients": [{"address": p.address, "percent": decimal_text(p.percent), "amount": p.amount}
                               for p in self.fee_payments],
            },
            "window": None if self.window is None else self.window.to_dict(),
            "miners": [entry.to_dict() for entry in self.entries],
            "totals": {"miners": self.miners_total, "fees": self.fees_total, "paid": self.total},
            "merkle_root": self.merkle_root,
            "notes": list(self.notes),
        }

    def to_json_bytes(self) -> bytes:
        """The canonical bytes of the report (see the module docstring)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("ascii")

    @property
    def digest(self) -> str:
        """sha256 of the canonical bytes, hex: one value to store and compare."""
        return hashlib.sha256(self.to_json_bytes()).hexdigest()


def proof(report: PayoutReport, address: str) -> list[tuple[str, str]]:
    """The inclusion proof of ``address``'s payout in ``report.merkle_root``; KeyError if not paid."""
    index = report._index.get(address)
    if index is None:
        raise KeyError(f"{address!r} has no payout in block {report.block.hash}")
    return merkle.proof_from_levels(report._levels, index)


def verify_proof(root: str | bytes, address: str, amount: int, proof: list[tuple[str, str]]) -> bool:
    """True when ``(address, amount)`` is under ``root`` by ``proof``; False for anything else."""
    return merkle.verify_proof(root, address, amount, proof)
