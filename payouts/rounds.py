"""The inputs of a payout: the blocks the pool found and the shares of their rounds.

Validated on construction (``PayoutError``, a ``ValueError``, for anything a payment must not be
computed from); the schemes in `payouts.schemes` and the reports in `payouts.report` take them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from payouts.money import PayoutError, check_account, check_amount, exact_difficulty

PAYING_STATUS = "confirmed"
UNPAID_STATUSES = frozenset({"orphaned", "rejected"})
BLOCK_STATUSES = frozenset({"pending", PAYING_STATUS}) | UNPAID_STATUSES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _created_us(created: object, share_id: str) -> int:
    if isinstance(created, datetime):
        if created.tzinfo is None or created.utcoffset() is None:
            raise PayoutError(f"share {share_id}: created {created} has no time zone")
        return (created - _EPOCH) // timedelta(microseconds=1)
    if isinstance(created, bool) or not isinstance(created, int):
        raise PayoutError(f"share {share_id}: created must be an aware datetime or int microseconds")
    return created


@dataclass(frozen=True)
class ShareWork:
    """One accepted share as the payout code needs it (a row of the ``shares`` table).

    ``created`` is an aware datetime or an int of microseconds since the Unix epoch; it orders the
    shares, with ``share_id`` breaking ties (the server's ids, node id + process start + sequence in
    fixed-width hex, sort in submission order within a node).  PPLNS and PROP need it; the default 0
    suits PPS, where order does not matter.  ``coinbase_value`` (satoshis, from the template) is
    needed only by FPPS, ``height`` only by a PPS subsidy that depends on it.  Rows with
    ``credited_difficulty`` 0 (a rejected block candidate) carry no work: leave them out.
    """
    address: str
    worker: str
    credited_difficulty: float
    network_difficulty: float
    share_id: str
    created: datetime | int = 0
    height: int | None = None
    coinbase_value: int | None = None
    work: Fraction = field(init=False, repr=False, compare=False)
    order_key: tuple[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.share_id, str) or not self.share_id:
            raise PayoutError(f"share id must be a non-empty str, got {self.share_id!r}")
        what = f"share {self.share_id}"
        check_account(self.address, f"{what} address")
        if not isinstance(self.worker, str):
            raise PayoutError(f"{what}: worker must be a str")
        credited = exact_difficulty(self.credited_difficulty, f"{what} credited difficulty")
        network = exact_difficulty(self.network_difficulty, f"{what} network difficulty")
        if self.height is not None and (isinstance(self.height, bool) or not isinstance(self.height, int)
                                        or self.height < 0):
            raise PayoutError(f"{what}: height must be a non-negative int")
        if self.coinbase_value is not None:
            check_amount(self.coinbase_value, f"{what} coinbase value")
        object.__setattr__(self, "work", credited / network)
        object.__setattr__(self, "order_key", (_created_us(self.created, self.share_id), self.share_id))


@dataclass(frozen=True)
class Block:
    """A block the pool found, as the tracker left it.

    ``reward`` is the coinbase value in satoshis (what the pool's output received); ``status`` is
    the ledger's: pending, confirmed, orphaned or rejected.
    """
    height: int
    hash: str
    reward: int
    finder_address: str = ""
    status: str = PAYING_STATUS

    def __post_init__(self) -> None:
        if isinstance(self.height, bool) or not isinstance(self.height, int) or self.height < 0:
            raise PayoutError(f"block height must be a non-negative int, got {self.height!r}")
        if not isinstance(self.hash, str) or not self.hash:
            raise PayoutError(f"block hash must be a non-empty str, got {self.hash!r}")
        check_amount(self.reward, f"block {self.hash} reward")
        if not isinstance(self.finder_address, str):
            raise PayoutError(f"block {self.hash} finder address must be a str")
        if self.status not in BLOCK_STATUSES:
            raise PayoutError(
                f"block {self.hash} status {self.status!r} is not one of {sorted(BLOCK_STATUSES)}")
