"""Pool fee, fee recipients, and the exact integer split of a block reward.

Every percent is a percent *of the block reward*: a 1 % pool fee and a 0.5 % recipient leave
98.5 % for the miners.  Percents are given as str, int, Decimal or Fraction with at most 8 decimal
places; floats are refused with an error that says how to write them (see
``payouts.money.parse_decimal``).  The configuration is refused unless every percent is in
0 ..= 100, the total is <= 100, recipient addresses are distinct and none of them is the pool
fee account.

The split (``split_reward``), all in integer satoshis:

* each recipient gets ``floor(reward * percent / 100)``;
* each miner gets ``floor(reward * (100 - total percent) / 100 * work / total work)``;
* the pool fee account gets ``floor(reward * pool percent / 100)`` (``pool_fee``) plus whatever the
  rounding down left over (``rounding_remainder``, less than one satoshi per payee).

So miner amounts + recipient amounts + pool fee + rounding remainder == reward, exactly, always;
a negative amount anywhere raises ``PayoutError``.  A fee recipient that also mines gets two
payments (its fee and its miner amount), listed apart in the report; the sender may add them up.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from payouts.money import PayoutError, check_account, check_amount, decimal_text, parse_decimal

HUNDRED = Fraction(100)


def parse_percent(value: object, what: str = "percent") -> Fraction:
    """A percent in 0 ..= 100 from str, int, Decimal or Fraction (floats refused), exactly."""
    percent = parse_decimal(value, what)
    if percent < 0:
        raise PayoutError(f"{what} must not be negative, got {value}")
    if percent > HUNDRED:
        raise PayoutError(f"{what} must be at most 100, got {value}")
    return percent


@dataclass(frozen=True)
class FeeRecipient:
    """A fixed cut of every block reward paid to ``address`` (a development fund, a partner...)."""
    address: str
    percent: Fraction

    def __post_init__(self) -> None:
        check_account(self.address, "fee recipient address")
        percent = parse_percent(self.percent, f"fee recipient {self.address} percent")
        object.__setattr__(self, "percent", percent)


@dataclass(frozen=True)
class FeeConfig:
    """The pool fee percent, the fee recipients and the account that takes the pool fee.

    Constructed from raw config values (``FeeConfig("1", [("addr", "0.5")], pool_account="pool")``);
    the fields hold exact Fractions afterwards and recipients are sorted by address, so two
    configurations that mean the same compare equal and produce the same payout reports.
    """
    pool_fee_percent: Fraction = Fraction(0)
    recipients: tuple[FeeRecipient, ...] = ()
    pool_account: str = "pool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_fee_percent", parse_percent(self.pool_fee_percent, "pool fee percent"))
        check_account(self.pool_account, "pool fee account")
        recipients = []
        if isinstance(self.recipients, (str, bytes, Mapping)) or not isinstance(self.recipients, Iterable):
            raise PayoutError("fee recipients must be a list of (address, percent) pairs")
        for item in self.recipients:
            if isinstance(item, FeeRecipient):
                recipients.append(item)
                continue
            pair = () if isinstance(item, (str, bytes)) or not isinstance(item, Iterable) else tuple(item)
            if len(pair) != 2:
                raise PayoutError(f"fee recipient {item!r} must be an (address, percent) pair")
            recipients.append(FeeRecipient(*pair))
        seen = set()
        for recipient in recipients:
            if recipient.address in seen:
                raise PayoutError(f"fee recipient {recipient.address} is listed twice")
            if recipient.address == self.pool_account:
                raise PayoutError(f"fee recipient {recipient.address} is the pool fee account")
            seen.add(recipient.address)
        recipients.sort(key=lambda recipient: recipient.address.encode("utf-8"))
        object.__setattr__(self, "recipients", tuple(recipients))
        if self.total_percent > HUNDRED:
            raise PayoutError(
                f"pool fee {decimal_text(self.pool_fee_percent)} % plus fee recipients add up to "
                f"{decimal_text(self.total_percent)} %, more than 100 %")

    @property
    def total_percent(self) -> Fraction:
        return self.pool_fee_percent + sum((r.percent for r in self.recipients), Fraction(0))

    @property
    def miners_fraction(self) -> Fraction:
        """The part of a block reward that goes to miners, exactly (0.985 for 1 % + 0.5 %)."""
        return (HUNDRED - self.total_percent) / HUNDRED


NO_FEES = FeeConfig()


@dataclass(frozen=True)
class FeePayment:
    address: str
    percent: Fraction
    amount: int


@dataclass(frozen=True)
class RewardSplit:
    """A reward split in satoshis; ``miner_amounts`` is keyed by address in UTF-8 byte order."""
    reward: int
    miner_amounts: dict[str, int]
    fee_payments: tuple[FeePayment, ...]
    pool_fee: int
    rounding_remainder: int

    @property
    def pool_amount(self) -> int:
        """What the pool fee account receives: its fee plus the rounding remainder."""
        return self.pool_fee + self.rounding_remainder

    @property
    def miners_total(self) -> int:
        return sum(self.miner_amounts.values())

    @property
    def fees_total(self) -> int:
        return sum(payment.amount for payment in self.fee_payments) + self.pool_amount


def split_reward(reward: int, work_by_address: Mapping[str, Fraction], fees: FeeConfig) -> RewardSplit:
    """Split ``reward`` satoshis: recipients and miners rounded down, the rest to the pool account.

    ``work_by_address`` holds each miner's exact work (any positive Fractions; only the ratios
    matter).  It must not be empty: a reward with nobody to pay is the caller's decision.
    """
    check_amount(reward, "block reward")
    if not isinstance(fees, FeeConfig):
        raise PayoutError(f"fees must be a FeeConfig, not {type(fees).__name__}")
    if not work_by_address:
        raise PayoutError("no miner to split the reward over")
    total_work = Fraction(0)
    for address, work in work_by_address.items():
        check_account(address, "miner address")
        if not isinstance(work, (int, Fraction)) or isinstance(work, bool) or work <= 0:
            raise PayoutError(f"work of {address} must be a positive Fraction, got {work!r}")
        total_work += work
    fee_payments = tuple(
        FeePayment(r.address, r.percent, math.floor(reward * r.percent / HUNDRED)) for r in fees.recipients)
    miners_reward = reward * fees.miners_fraction
    # floor(miners_reward * work / total_work) in integers (no Fraction to normalise per miner).
    numerator = miners_reward.numerator * total_work.denominator
    denominator = miners_reward.denominator * total_work.numerator
    miner_amounts = {}
    for address in sorted(work_by_address, key=lambda address: address.encode("utf-8")):
        work = Fraction(work_by_address[address])
        miner_amounts[address] = (numerator * work.numerator) // (denominator * work.denominator)
    pool_fee = math.floor(reward * fees.pool_fee_percent / HUNDRED)
    rounding_remainder = (
        reward - pool_fee - sum(p.amount for p in fee_payments) - sum(miner_amounts.values()))
    for what, amount in ((f"fee to {p.address}", p.amount) for p in fee_payments):
        if amount < 0:
            raise PayoutError(f"{what} would be negative: {amount}")
    for address, amount in miner_amounts.items():
        if amount < 0:
            raise PayoutError(f"amount for {address} would be negative: {amount}")
    if pool_fee < 0 or rounding_remainder < 0:
        raise PayoutError(
            f"split of {reward} leaves a negative remainder: pool fee {pool_fee}, "
            f"rounding remainder {rounding_remainder}")
    return RewardSplit(reward, miner_amounts, fee_payments, pool_fee, rounding_remainder)
